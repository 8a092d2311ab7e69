"""The report: numbers from plain data (``analysis``), figures (``plots``, ``worldmap``), the
reference's published results (``reference``) and the page that puts them together
(``page``: ``report`` and ``compare``); ``geo``: the page's "Where" section (how far the
pins land) from ``evaluate``'s ``geo_predictions.csv``."""
