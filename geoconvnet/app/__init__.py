"""The web app: ``geoconvnet serve`` (:func:`.serve.serve`), a page and a JSON API over the
inference core: the top guesses, a world map, heat maps and the GeoGuessr pin."""
