"""What a teacher hands out: the checks a student runs (``checks``), and the student and solution
versions of the lesson generated from the teaching notebook, with grading (``assignment``)."""
