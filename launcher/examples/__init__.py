"""Example tasks, one module each, with their configs in conf/task/."""
