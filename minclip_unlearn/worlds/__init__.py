"""The worlds the book runs on offline: ToyWorld (images, captions, a shipped toy CLIP) and the dial world
(an embedding-level synthetic CLIP whose interaction strength kappa is a dial)."""
