"""The waitlist of full sessions: the line parents join and leave (entries), and the sweep the reconciler runs."""
