"""Live order status: a Hub per process, fed through Redis pub/sub so any process can push to any client."""
