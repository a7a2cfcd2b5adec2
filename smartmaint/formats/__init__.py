"""Date formats of the console (FORMAT_MODULE_PATH): one format everywhere, as the charts draw it."""
