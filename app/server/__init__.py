"""The server's own work: its settings and addresses, the training job in the background, the
classroom's index of app runs with its disk guard, and the memory it gives back."""
