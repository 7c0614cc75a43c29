"""Tools of the course: build it, grade a demo class, and check exercises (adcheck)."""
