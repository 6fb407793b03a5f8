"""runner, one per region (`beacon-runner --region R`, __main__.py, or `beacon runner` in the CLI; main.py runs
the two halves side by side):

- expander.py: consume JobSubmitted → decide (expand.py, pure) → emit this region's CellScheduled records
  and a JobExpanded record, and commit the job, in one Kafka transaction;
- worker.py: consume a CellScheduled → call the model, clean and classify the answer (execute.py, with
  beacon.providers and beacon.domain) → emit ExecutionCompleted → commit once it is acknowledged.

bootstrap.py makes its Kafka clients and model endpoints; the loops take them as arguments."""
