package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"

	"github.com/berthhq/berth/client/transport"
)

// ACRConfig is the upstream.acr section.
type ACRConfig struct {
	// TenantID, ClientID and ClientSecret (or ClientSecretFile) name a
	// service principal. Without a secret, ManagedIdentity must be set.
	TenantID         string `yaml:"tenantID"`
	ClientID         string `yaml:"clientID"`
	ClientSecret     string `yaml:"clientSecret"`
	ClientSecretFile string `yaml:"clientSecretFile"`
	// ManagedIdentity uses the identity of the machine or pod (ClientID,
	// when set, picks a user-assigned one).
	ManagedIdentity bool `yaml:"managedIdentity"`
	// AuthorityHost is Microsoft Entra's endpoint (default the public
	// cloud's, https://login.microsoftonline.com/).
	AuthorityHost string `yaml:"authorityHost"`
	// Scope is what the Entra token is asked for (default
	// https://management.azure.com/.default, which ACR's exchange takes).
	Scope string `yaml:"scope"`
}

// DefaultACRScope is the scope of the Entra token ACR exchanges.
const DefaultACRScope = "https://management.azure.com/.default"

func checkACR(env Env) error {
	s := env.Settings
	c := s.ACR
	errs := []error{noOptions("acr", env)}
	if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.CredentialHelper != "" {
		errs = append(errs, errors.New("acr: username, password and credentialHelper do not apply: the token comes from Microsoft Entra (set acr.tenantID, acr.clientID and acr.clientSecret, or acr.managedIdentity)"))
	}
	switch {
	case c.ManagedIdentity && (c.ClientSecret != "" || c.ClientSecretFile != ""):
		errs = append(errs, errors.New("acr: set managedIdentity or clientSecret, not both"))
	case c.ManagedIdentity:
	case c.TenantID == "" || c.ClientID == "" || (c.ClientSecret == "" && c.ClientSecretFile == ""):
		errs = append(errs, errors.New("acr: a service principal needs tenantID, clientID and clientSecret (or clientSecretFile); or set managedIdentity: true"))
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		errs = append(errs, errors.New("acr: set clientSecret or clientSecretFile, not both"))
	}
	if c.AuthorityHost != "" {
		if u, err := parseBaseURL(c.AuthorityHost); err != nil || u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("acr.authorityHost %q: want https://HOST", c.AuthorityHost))
		}
	}
	return errors.Join(errs...)
}

// acrProvider exchanges a Microsoft Entra token at the registry's
// /oauth2/exchange for an ACR refresh token, which berth's token flow
// then trades at /oauth2/token for access tokens per scope (ACR's realm).
type acrProvider struct {
	cred     azcore.TokenCredential
	scope    string
	tenant   string
	exchange string // https://REGISTRY/oauth2/exchange
	service  string
	hc       *http.Client
	tok      *expiring[string]
}

func newACR(_ context.Context, env Env) (Provider, error) {
	c := env.Settings.ACR
	opts := azcore.ClientOptions{Transport: env.HTTPClient}
	if c.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimSuffix(c.AuthorityHost, "/") + "/"}
	}
	var cred azcore.TokenCredential
	var err error
	if c.ManagedIdentity {
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.ClientID != "" {
			mo.ID = azidentity.ClientID(c.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	} else {
		secret := c.ClientSecret
		if c.ClientSecretFile != "" {
			b, rerr := os.ReadFile(c.ClientSecretFile)
			if rerr != nil {
				return nil, fmt.Errorf("acr.clientSecretFile: %w", rerr)
			}
			secret = strings.TrimSpace(string(b))
		}
		cred, err = azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: c.AuthorityHost != "",
		})
	}
	if err != nil {
		return nil, fmt.Errorf("acr: %w", err)
	}
	scope := c.Scope
	if scope == "" {
		scope = DefaultACRScope
	}
	ex := *env.URL
	ex.Path = "/oauth2/exchange"
	p := &acrProvider{cred: cred, scope: scope, tenant: c.TenantID, exchange: ex.String(), service: env.URL.Hostname(), hc: env.HTTPClient}
	p.tok = &expiring[string]{now: env.Now, fetch: p.fetch}
	return p, nil
}

// Credentials implements Provider: the ACR refresh token, as an identity
// token (berth's token flow posts it with grant_type=refresh_token).
func (p *acrProvider) Credentials(ctx context.Context, _ []string) (Credentials, error) {
	rt, err := p.tok.get(ctx)
	if err != nil {
		return Credentials{}, credentialsError("acr", "%v", err)
	}
	return Credentials{IdentityToken: rt}, nil
}

// Invalidate implements Invalidator.
func (p *acrProvider) Invalidate() bool {
	p.tok.invalidate()
	return true
}

// maxExchangeBody bounds the exchange's answer.
const maxExchangeBody = 1 << 20

func (p *acrProvider) fetch(ctx context.Context) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	at, err := p.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{p.scope}})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("Microsoft Entra token: %w", err)
	}
	form := url.Values{"grant_type": {"access_token"}, "service": {p.service}, "access_token": {at.Token}}
	if p.tenant != "" {
		form.Set("tenant", p.tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.exchange, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.hc.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("/oauth2/exchange: %w", err)
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return "", time.Time{}, fmt.Errorf("/oauth2/exchange: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxExchangeBody)).Decode(&body); err != nil {
		return "", time.Time{}, fmt.Errorf("/oauth2/exchange: decoding the answer: %w", err)
	}
	if body.RefreshToken == "" {
		return "", time.Time{}, errors.New("/oauth2/exchange: the answer holds no refresh_token")
	}
	// An ACR refresh token is a JWT whose exp says when it expires; the
	// Entra token's expiry bounds it otherwise.
	exp := at.ExpiresOn
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(body.RefreshToken, &claims); err == nil && claims.ExpiresAt != nil {
		exp = claims.ExpiresAt.Time
	}
	return body.RefreshToken, exp, nil
}
