"""The app's pure logic: labels, pixels, uploads, checkpoints on disk, progress, verdicts and the
figures built from them. No module here imports Streamlit, so unit tests call them directly."""
