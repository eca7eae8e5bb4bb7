"""The infinite-canvas pipeline (arXiv 2407.12642): window geometry and blending (``geometry``), the expansion
loop (``expand``)."""
