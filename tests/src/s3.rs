//! S3-compatible servers (moto, s3s-fs) started for a test on a free port.
