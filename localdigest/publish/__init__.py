"""The last stage: the saved digests (localdigest.output.archive) as a static site and an Atom feed."""
