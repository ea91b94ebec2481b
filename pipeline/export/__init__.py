"""A run's best checkpoint as an MLflow model, and the best configurations in the Model Registry."""
