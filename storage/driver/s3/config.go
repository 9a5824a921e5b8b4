package s3

import "time"

// Config is the driver's configuration section (storage.s3 in berth's
// configuration; BERTH_STORAGE_S3_KEY in the environment). Zero values
// mean the defaults of Options.
type Config struct {
	// Endpoint is the service URL; empty for AWS S3.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region.
	Region string `yaml:"region"`
	// Bucket is required.
	Bucket string `yaml:"bucket"`
	// RootDirectory is a key prefix inside the bucket.
	RootDirectory string `yaml:"rootDirectory"`
	// AccessKey and SecretKey go together; both empty means the AWS
	// default credential chain. The secret is never logged.
	AccessKey    string `yaml:"accessKey"`
	SecretKey    string `yaml:"secretKey"`
	SessionToken string `yaml:"sessionToken"`
	// PathStyle addresses buckets in the path (MinIO and most non-AWS
	// stores need it).
	PathStyle bool `yaml:"pathStyle"`
	// PartSize is the multipart part size in bytes (0: the default).
	PartSize int64 `yaml:"partSize"`
	// Redirect sends blob GETs to presigned URLs.
	Redirect bool `yaml:"redirect"`
	// RedirectExpiry is how long a presigned URL lives (0: the default,
	// 20m).
	RedirectExpiry time.Duration `yaml:"redirectExpiry"`
	// InsecureSkipVerify accepts any TLS certificate from the endpoint.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// MaxAttempts bounds retries of throttled or failed requests (0: default).
	MaxAttempts int `yaml:"maxAttempts"`
}

// Options returns the driver options c describes.
func (c *Config) Options() Options {
	return Options{
		Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, RootDirectory: c.RootDirectory,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken,
		PathStyle: c.PathStyle, PartSize: c.PartSize, Redirect: c.Redirect,
		RedirectExpiry:     c.RedirectExpiry,
		InsecureSkipVerify: c.InsecureSkipVerify, MaxAttempts: c.MaxAttempts,
	}
}
