"""Authoring: the notebooks' text sources, the build of source/, release/ and
solutions/ from them, and the students' own copies (``start``)."""
