package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// HTTP timeouts for S3 requests. Objects are at most a few tens of MiB, so a request that
// has been silent for a minute is stuck, not slow; the SDK's retryer then tries again.
const (
	s3DialTimeout    = 10 * time.Second
	s3HeaderTimeout  = time.Minute // from the request written to the response's headers
	s3ReadTimeout    = time.Minute // between bytes of a response
	s3RequestTimeout = 15 * time.Minute
)

// s3ConflictRetries is how many times Put tries a conditional write that AWS refuses
// with 409 ConditionalRequestConflict.
const s3ConflictRetries = 5

// S3Config says where an S3 storage is and how to reach it.
type S3Config struct {
	// Bucket must exist already.
	Bucket string
	// Prefix is where in the bucket the objects are: key k is the object Prefix/k (or k,
	// for an empty Prefix). No leading or trailing '/'.
	Prefix string
	// Endpoint is the URL of an S3-compatible server; empty means AWS.
	Endpoint string
	// Region defaults to the SDK's (AWS_REGION, shared config), else us-east-1.
	Region string
	// AccessKey and SecretKey, when set, are the credentials; otherwise the SDK's default
	// chain finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, shared files, …).
	AccessKey, SecretKey string
	// PathStyle addresses the bucket as Endpoint/Bucket instead of Bucket.Endpoint, as
	// most S3-compatible servers need.
	PathStyle bool
}

// ParseS3URL parses "s3://bucket/some/prefix" into the Bucket and Prefix of a config.
func ParseS3URL(s string) (S3Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return S3Config{}, fmt.Errorf("parse S3 URL: %w", err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, fmt.Errorf("parse S3 URL %q: scheme is not s3://", s)
	}
	if u.Host == "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return S3Config{}, fmt.Errorf("parse S3 URL %q: want s3://bucket/prefix", s)
	}
	cfg := S3Config{Bucket: u.Host, Prefix: strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")}
	if cfg.Prefix != "" {
		if err := CheckKey(cfg.Prefix); err != nil {
			return S3Config{}, fmt.Errorf("parse S3 URL %q: invalid prefix", s)
		}
	}
	return cfg, nil
}

// S3 stores objects in an S3 bucket below a prefix. A Put is a single PutObject; a
// conditional Put is a PutObject with If-None-Match: *, which the server decides
// atomically.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in '/'
	name   string
}

// NewS3 connects to the bucket of cfg and checks that it is there and that the
// credentials may use it.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	if cfg.Prefix != "" {
		if err := CheckKey(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("s3: prefix: %w", err)
		}
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3: give both an access key and a secret key, or neither")
	}
	httpClient := awshttp.NewBuildableClient().
		WithTimeout(s3RequestTimeout).
		WithReadTimeout(s3ReadTimeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3DialTimeout }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = s3HeaderTimeout })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryMode(aws.RetryModeStandard),
		// S3-compatible servers vary in which of the newer checksum headers they accept;
		// every one accepts Content-MD5, which Put sets.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	s := &S3{client: client, bucket: cfg.Bucket, name: "s3://" + cfg.Bucket}
	if cfg.Prefix != "" {
		s.prefix = cfg.Prefix + "/"
		s.name += "/" + cfg.Prefix
	}

	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("s3: no credentials for %s (set the access and secret keys, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", s.name, err)
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, bucketError(ctx, client, cfg, awsCfg.Region, err)
	}
	return s, nil
}

// bucketError says why HeadBucket failed in terms a person can act on. A HEAD response
// has no body, so no error code; a one-key listing, which needs the same permission,
// gets the server to name the reason.
func bucketError(ctx context.Context, client *s3.Client, cfg S3Config, region string, err error) error {
	where := cfg.Endpoint
	if where == "" {
		where = "AWS S3 (" + region + ")"
	}
	var sendErr *smithyhttp.RequestSendError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("s3: check bucket %q at %s: %w", cfg.Bucket, where, err)
	case errors.As(err, &sendErr):
		return fmt.Errorf("s3: cannot reach %s (is the endpoint right?): %w", where, err)
	}
	if _, lerr := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(cfg.Bucket), MaxKeys: aws.Int32(1),
	}); lerr != nil && !errors.As(lerr, &sendErr) {
		var ae smithy.APIError
		if errors.As(lerr, &ae) && ae.ErrorCode() != "" {
			err = lerr
		}
	}
	var redirect string
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		redirect = re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	switch {
	case hasCode(err, "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AccessDenied",
		"XAdminUserNotFound") || // versitygw's 404 for an unknown access key
		hasStatus(err, http.StatusForbidden) || hasStatus(err, http.StatusUnauthorized):
		return fmt.Errorf("s3: access to bucket %q at %s denied: the credentials are wrong or may not use the bucket: %w", cfg.Bucket, where, err)
	case hasCode(err, "NoSuchBucket") || (hasStatus(err, http.StatusNotFound) && noCode(err)):
		return fmt.Errorf("s3: bucket %q does not exist at %s: %w", cfg.Bucket, where, err)
	case redirect != "" && redirect != region:
		return fmt.Errorf("s3: bucket %q is in region %s, not %s: %w", cfg.Bucket, redirect, region, err)
	case hasCode(err, "PermanentRedirect", "AuthorizationHeaderMalformed") || hasStatus(err, http.StatusMovedPermanently):
		return fmt.Errorf("s3: bucket %q is not at %s (wrong region or endpoint?): %w", cfg.Bucket, where, err)
	}
	return fmt.Errorf("s3: check bucket %q at %s: %w", cfg.Bucket, where, err)
}

// String implements Storage.
func (s *S3) String() string { return s.name }

// objectKey maps a key to its object's name in the bucket.
func (s *S3) objectKey(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements Storage.
func (s *S3) Put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	sum := md5.Sum(data)
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	// Count the attempts the SDK's retryer makes: see below.
	var calls, attempts int
	countAttempts := func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("BackstopCountAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					attempts++
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
	for {
		calls++
		_, err = s.client.PutObject(ctx, in, countAttempts)
		// AWS answers 409 ConditionalRequestConflict to a conditional write that raced
		// another write of the same key still in progress, and asks for a retry: the
		// other write may yet fail. The retry then gets 412 or succeeds.
		if !ifAbsent || !hasCode(err, "ConditionalRequestConflict") || calls == s3ConflictRetries {
			break
		}
		if err := sleep(ctx, time.Duration(calls)*100*time.Millisecond); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	switch {
	case err == nil:
		return nil
	case ifAbsent && (hasStatus(err, http.StatusPreconditionFailed) || hasCode(err, "PreconditionFailed", "ConditionalRequestConflict")):
		if attempts > calls {
			// The SDK retried, so an attempt whose answer was lost may have written the
			// object and the retry found it there. Then it holds our bytes, and is ours
			// (a lock's content names its holder).
			if got, err := s.Get(ctx, key); err == nil && bytes.Equal(got, data) {
				return nil
			}
		}
		return fmt.Errorf("put %s: %w", key, ErrExists)
	}
	return fmt.Errorf("put %s: %w", key, err)
}

// Get implements Storage.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	b, err := s.get(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// GetRange implements Storage.
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range [%d, %d)", key, offset, offset+length)
	}
	if length == 0 {
		// "bytes=off-(off-1)" is no range; still say whether the object is there.
		if _, err := s.Size(ctx, key); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	b, err := s.get(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(k),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)),
	})
	if err == nil && int64(len(b)) != length {
		// The server cuts a range that runs past the end of the object short.
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("get %s [%d, %d): %w", key, offset, offset+length, err)
	}
	return b, nil
}

func (s *S3) get(ctx context.Context, in *s3.GetObjectInput) ([]byte, error) {
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrNotExist
		}
		return nil, err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Size implements Storage.
func (s *S3) Size(ctx context.Context, key string) (int64, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return 0, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if isNotFound(err) {
		return 0, fmt.Errorf("size of %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// List implements Storage.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok || CheckKey(key) != nil {
				// Not one of ours: a directory marker ("a/") or a name no Put makes.
				continue
			}
			if err := fn(key, aws.ToInt64(o.Size)); err != nil {
				return fmt.Errorf("list %s: %w", prefix, err)
			}
		}
	}
	return nil
}

// Delete implements Storage.
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Sync implements Storage: each Put is durable when it returns.
func (s *S3) Sync(ctx context.Context) error { return nil }

// isNotFound reports whether err says the object is not there (and not that the bucket
// is not, nor versitygw's 404 for an unknown access key).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || hasCode(err, "NoSuchKey") ||
		(hasStatus(err, http.StatusNotFound) && noCode(err))
}

// hasCode reports whether err is an S3 error with one of the codes.
func hasCode(err error, codes ...string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && slices.Contains(codes, ae.ErrorCode())
}

// noCode reports whether err carries no S3 error code beyond the "NotFound" that the SDK
// gives a HEAD response's 404, which has no body.
func noCode(err error) bool {
	var ae smithy.APIError
	return !errors.As(err, &ae) || ae.ErrorCode() == "" || ae.ErrorCode() == "NotFound"
}

// hasStatus reports whether err is an HTTP response with the status.
func hasStatus(err error, status int) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
