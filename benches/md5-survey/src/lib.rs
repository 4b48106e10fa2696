//! Empty: the survey is the `md5` bench target.
