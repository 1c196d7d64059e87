"""The results store: the Parquet schema and run metadata, durable writes on any `pyarrow.fs` store,
the reader of a results tree, the lock, and device labels."""
