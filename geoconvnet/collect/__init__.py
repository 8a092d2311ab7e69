"""Collecting screenshots into the reference layout: ``collector`` (the loop: resumable,
per-country progress, dry runs; records go to :mod:`geoconvnet.data.manifest`) and three
sources: ``geoguessr`` (a real browser through GeoGuessr rounds; its page details in
``geoguessr_page``), ``streetview`` (Google Street View Static API) and ``mapillary``
(Mapillary API v4), with ``http`` (retries, secrets kept out of messages); random places
inside a country come from :mod:`geoconvnet.data.places`."""
