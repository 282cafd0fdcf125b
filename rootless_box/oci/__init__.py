"""Pure data: digests, references, media types, image configs, the run spec. No I/O."""
