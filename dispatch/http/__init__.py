"""The HTTP side of the dispatch core: what the status page and the live-link pages serve.

The only part of ``dispatch`` allowed to know about the web (PRODUCT.md §1). ``static/`` holds
the files served as they are (vendored Leaflet, the map script); ``charts`` draws the status
page's small SVG charts on the server, so they need no JavaScript charting library.
"""
