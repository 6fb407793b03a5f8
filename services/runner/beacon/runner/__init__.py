"""runner: consume JobSubmitted (main.py) → expand into cells (expand.py) → call the model and classify
(execute.py, providers/, classify.py) → emit ExecutionCompleted → commit the job."""
