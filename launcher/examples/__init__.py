"""Example tasks, one module each; configs in launcher/conf/task/, inputs in samples/."""
