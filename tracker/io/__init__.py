"""Reading and writing landmarks, frames and results."""
