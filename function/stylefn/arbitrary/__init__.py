"""Any painting as the style, at request time (issue #31): painter.py paints, wct.py is the
transform it uses, cache.py keeps analysed paintings."""
