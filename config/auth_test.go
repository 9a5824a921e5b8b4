package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "berth.yaml")
	os.WriteFile(file, []byte(`
data: /var/lib/berth
auth:
  mode: token
  htpasswd: users/htpasswd
  token:
    key: /abs/key.pem
  rules:
    - repositories: ["**"]
      users: [admin]
      actions: ["*"]
tls:
  cert: tls/cert.pem
  key: tls/key.pem
`), 0o644)
	c := Default()
	if err := c.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Auth.Htpasswd != filepath.Join(dir, "users/htpasswd") || c.TLS.Cert != filepath.Join(dir, "tls/cert.pem") {
		t.Errorf("relative paths not resolved against the config file: %q %q", c.Auth.Htpasswd, c.TLS.Cert)
	}
	if c.Auth.Token.Key != "/abs/key.pem" || c.Auth.Token.Issuer != "berth" || c.Auth.Token.Realm != "/token" || c.Auth.Token.TTL != 5*time.Minute || c.Auth.Token.RefreshTTL != 720*time.Hour || c.Auth.Token.Leeway != time.Minute {
		t.Errorf("token settings %+v", c.Auth.Token)
	}
	if !c.TLSEnabled() || c.OpenWithoutAuth() {
		t.Error("TLSEnabled/OpenWithoutAuth")
	}

	d := Default()
	if err := d.Validate(); err != nil || !d.OpenWithoutAuth() || d.Auth.Htpasswd != "" {
		t.Errorf("defaults: %v, open %v, htpasswd %q", err, d.OpenWithoutAuth(), d.Auth.Htpasswd)
	}
}

func TestAuthEnv(t *testing.T) {
	c := Default()
	err := c.ApplyEnv([]string{
		"BERTH_AUTH_MODE=token",
		"BERTH_AUTH_TOKEN_JWKS=https://idp.example/jwks.json",
		"BERTH_AUTH_TOKEN_ALGORITHMS=ES256, RS256",
		"BERTH_AUTH_TOKEN_REALM=https://idp.example/token",
		"BERTH_AUTH_TOKEN_ISSUER=https://idp.example",
		"BERTH_AUTH_LOGINLIMIT_BURST=5",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Auth.Token.Algorithms, "|") != "ES256|RS256" || c.Auth.LoginLimit.Burst != 5 || !c.Auth.Token.External() {
		t.Errorf("%+v", c.Auth)
	}
	c.Auth.Rules = []Rule{{Repositories: []string{"**"}, Users: []string{"anonymous"}, Actions: []string{"pull"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Auth.Htpasswd != "" {
		t.Errorf("an external issuer needs no htpasswd, got %q", c.Auth.Htpasswd)
	}
	e := Default()
	if err := e.ApplyEnv([]string{"BERTH_AUTH_RULES=x"}); err == nil {
		t.Error("rules set from the environment")
	}
}

func TestAuthValidation(t *testing.T) {
	for _, c := range []struct {
		yaml, want string
	}{
		{"auth: {mode: open}", "auth.mode"},
		{"auth: {mode: basic}", "at least one rule"},
		{"auth: {rules: [{repositories: [a], users: [x], actions: [pull]}]}", "auth.mode is none"},
		{"auth: {mode: basic, rules: [{repositories: [a], actions: [pull]}]}", "set users or groups"},
		{"auth: {mode: basic, rules: [{users: [a], actions: [pull]}]}", "set repositories"},
		{"auth: {mode: basic, rules: [{repositories: [a], users: [a], actions: [fly]}]}", `action "fly"`},
		{"auth: {mode: basic, rules: [{repositories: [a], groups: [g], actions: [pull]}]}", `group "g" is not defined`},
		{"auth: {mode: token, token: {realm: token}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.realm"},
		{"auth: {mode: token, token: {jwks: k.json}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "absolute http(s) URL"},
		{"auth: {mode: token, token: {jwks: k.json, realm: 'https://x/t', issuer: i, algorithms: [HS256]}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "HS256"},
		{"auth: {mode: token, token: {algorithm: RS256}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.algorithm"},
		{"auth: {mode: basic, rules: [{repositories: ['Team/*'], users: [a], actions: [pull]}]}", `auth.rules[0].repositories: "Team/*": character 'T'`},
		{"auth: {mode: token, token: {ttl: 5s}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.ttl 5s: want from 10s to 24h"},
		{"auth: {mode: token, token: {ttl: 25h}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.ttl 25h0m0s"},
		{"auth: {mode: token, token: {refreshTTL: 30m}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.refreshTTL 30m0s: want at least 1h"},
		{"auth: {mode: token, token: {leeway: 11m}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.leeway 11m0s: want from 0s to 10m"},
		{"auth: {mode: token, token: {leeway: 60}, rules: [{repositories: [a], users: [a], actions: [pull]}]}", "auth.token.leeway: \"60\" needs a unit"},
		{"tls: {cert: c.pem}", "both cert and key"},
		{"tls: {clientAuth: require}", "needs tls.clientCA"},
	} {
		file := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(file, []byte(c.yaml), 0o644)
		cfg := Default()
		err := cfg.LoadFile(file)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.yaml, err, c.want)
		}
	}
}
