"""The report: numbers from plain data (``analysis``), figures (``plots``, ``worldmap``), the
reference's published results (``reference``) and the page that puts them together
(``page``: ``report`` and ``compare``)."""
