"""The app tests' server: a real `geoconvnet serve` process of the tiny trained run."""

import pytest
from served import start_server, stop_server


@pytest.fixture(scope="module")
def server(trained_run):
    url, proc = start_server(trained_run)
    yield url
    stop_server(proc)
