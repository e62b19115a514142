"""One module per journey of the load mix; `loadtests/locustfile.py` puts them together."""
