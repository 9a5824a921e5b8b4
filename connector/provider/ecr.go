package provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

// ECRConfig is the upstream.ecr section.
type ECRConfig struct {
	// Region is the AWS region of the registry; by default it is read
	// from the registry host, ACCOUNT.dkr.ecr.REGION.amazonaws.com.
	Region string `yaml:"region"`
	// RegistryID is the account whose registry the token is for; by
	// default the host's ACCOUNT (or the caller's own account).
	RegistryID string `yaml:"registryID"`
	// AccessKeyID and SecretAccessKey (or SecretAccessKeyFile) are static
	// keys; without them the SDK's default credential chain is used
	// (environment, shared files, web identity, container and instance
	// roles).
	AccessKeyID         string `yaml:"accessKeyID"`
	SecretAccessKey     string `yaml:"secretAccessKey"`
	SecretAccessKeyFile string `yaml:"secretAccessKeyFile"`
	// Endpoint replaces the ECR API endpoint (a VPC endpoint, or a test
	// server).
	Endpoint string `yaml:"endpoint"`
}

// ecrHostRE matches ECR registry hosts: ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn].
var ecrHostRE = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ECRHost returns the account and region of an ECR registry host.
func ECRHost(host string) (account, region string, ok bool) {
	m := ecrHostRE.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

func checkECR(env Env) error {
	s := env.Settings
	c := s.ECR
	errs := []error{noOptions("ecr", env)}
	if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.CredentialHelper != "" {
		errs = append(errs, errors.New("ecr: username, password and credentialHelper do not apply: the token comes from GetAuthorizationToken (set ecr.accessKeyID and ecr.secretAccessKey, or use the default credential chain)"))
	}
	if _, _, ok := ECRHost(env.URL.Hostname()); !ok && c.Region == "" {
		errs = append(errs, fmt.Errorf("ecr.region: required, since %s is not an ECR host (ACCOUNT.dkr.ecr.REGION.amazonaws.com)", env.URL.Host))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "" && c.SecretAccessKeyFile == "") {
		errs = append(errs, errors.New("ecr: set accessKeyID with secretAccessKey (or secretAccessKeyFile), or neither for the default credential chain"))
	}
	if c.SecretAccessKey != "" && c.SecretAccessKeyFile != "" {
		errs = append(errs, errors.New("ecr: set secretAccessKey or secretAccessKeyFile, not both"))
	}
	if c.Endpoint != "" {
		if _, err := parseBaseURL(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("ecr.endpoint %q: %v", c.Endpoint, err))
		}
	}
	if c.RegistryID != "" && !regexp.MustCompile(`^[0-9]{12}$`).MatchString(c.RegistryID) {
		errs = append(errs, fmt.Errorf("ecr.registryID %q: want a 12-digit AWS account id", c.RegistryID))
	}
	return errors.Join(errs...)
}

// ecrProvider authenticates with a token from ECR's GetAuthorizationToken
// (Basic, user AWS), renewed before it expires (after 12 hours).
type ecrProvider struct {
	client     *ecr.Client
	registryID string
	tok        *expiring[Credentials]
}

func newECR(ctx context.Context, env Env) (Provider, error) {
	c := env.Settings.ECR
	account, region, _ := ECRHost(env.URL.Hostname())
	if c.Region != "" {
		region = c.Region
	}
	if c.RegistryID != "" {
		account = c.RegistryID
	}
	// The SDK's own client, so that it can add AWS_CA_BUNDLE to the
	// upstream's TLS settings.
	hc := awshttp.NewBuildableClient().WithTimeout(env.HTTPClient.Timeout).WithTransportOptions(func(tr *http.Transport) {
		if env.TLS != nil {
			tr.TLSClientConfig = env.TLS.Clone()
		}
	})
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region), awsconfig.WithHTTPClient(hc)}
	if c.AccessKeyID != "" {
		secret := c.SecretAccessKey
		if c.SecretAccessKeyFile != "" {
			b, err := os.ReadFile(c.SecretAccessKeyFile)
			if err != nil {
				return nil, fmt.Errorf("ecr.secretAccessKeyFile: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		opts = append(opts, awsconfig.WithCredentialsProvider(awscreds.NewStaticCredentialsProvider(c.AccessKeyID, secret, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("ecr: AWS configuration: %w", err)
	}
	client := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	p := &ecrProvider{client: client, registryID: account}
	p.tok = &expiring[Credentials]{now: env.Now, fetch: p.fetch}
	return p, nil
}

func (p *ecrProvider) Credentials(ctx context.Context, _ []string) (Credentials, error) {
	c, err := p.tok.get(ctx)
	if err != nil {
		return Credentials{}, credentialsError("ecr", "%v", err)
	}
	return c, nil
}

// Invalidate implements Invalidator.
func (p *ecrProvider) Invalidate() bool {
	p.tok.invalidate()
	return true
}

// fetch asks ECR for an authorization token: base64("AWS:PASSWORD").
func (p *ecrProvider) fetch(ctx context.Context) (Credentials, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	in := &ecr.GetAuthorizationTokenInput{}
	if p.registryID != "" {
		in.RegistryIds = []string{p.registryID}
	}
	out, err := p.client.GetAuthorizationToken(ctx, in)
	if err != nil {
		return Credentials{}, time.Time{}, fmt.Errorf("GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return Credentials{}, time.Time{}, errors.New("GetAuthorizationToken: the answer holds no token")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return Credentials{}, time.Time{}, errors.New("GetAuthorizationToken: the token is not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Credentials{}, time.Time{}, errors.New("GetAuthorizationToken: the token is not USER:PASSWORD")
	}
	if d.ExpiresAt == nil {
		return Credentials{}, time.Time{}, errors.New("GetAuthorizationToken: the token has no expiry")
	}
	return Credentials{Username: user, Password: pass}, *d.ExpiresAt, nil
}
