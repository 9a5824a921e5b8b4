// Package credentials reads and writes registry credentials the way Docker does: in the
// Docker config file (~/.docker/config.json, or $DOCKER_CONFIG/config.json) under "auths",
// or through credential helpers (docker-credential-NAME, chosen by "credHelpers" per
// registry or "credsStore" for all).
package credentials

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthhq/berth/client/service"
	"github.com/berthhq/berth/client/transport"
)

// Credentials are what a registry is authenticated with.
type Credentials = transport.Credentials

// ConfigFileName is the name of the Docker config file in its directory.
const ConfigFileName = "config.json"

// DefaultPath returns where Docker keeps its config file: $DOCKER_CONFIG/config.json, or
// ~/.docker/config.json.
func DefaultPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, ConfigFileName)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".docker", ConfigFileName)
}

// AuthEntry is one entry of the config file's "auths".
type AuthEntry struct {
	// Auth is base64("username:password").
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
	Email         string `json:"email,omitempty"`
}

// Credentials decodes the entry.
func (e AuthEntry) Credentials() (Credentials, error) {
	c := Credentials{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
	if e.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return Credentials{}, fmt.Errorf("invalid base64 in \"auth\": %v", err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Credentials{}, errors.New(`"auth" does not hold "username:password"`)
		}
		c.Username, c.Password = user, strings.Trim(pass, "\x00")
	}
	return c, nil
}

// Config is the part of the Docker config file that holds credentials.
type Config struct {
	Auths       map[string]AuthEntry `json:"auths,omitempty"`
	CredsStore  string               `json:"credsStore,omitempty"`
	CredHelpers map[string]string    `json:"credHelpers,omitempty"`
}

// ServerAddress returns the key under which a registry's credentials are kept: Docker Hub's
// IndexServer ("https://index.docker.io/v1/") for Docker Hub, otherwise the normalised host.
func ServerAddress(registry string) string {
	h := NormalizeHost(registry)
	if service.IsDockerHub(h) {
		return service.IndexServer
	}
	return h
}

// NormalizeHost reduces a registry as users write it ("https://host:5000/v2/", "HOST") to
// "host:5000": scheme and path stripped, lower case. Docker Hub's names all become
// "index.docker.io".
func NormalizeHost(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(s)
	if service.IsDockerHub(s) {
		return service.IndexHostname
	}
	return s
}

// ConfigFile is a Docker config file. Every call reads the file afresh, and every change is
// written atomically (a temporary file renamed over it), keeping the fields it does not
// know. It is safe for concurrent reads; writers in several processes race as with Docker.
type ConfigFile struct {
	path string
	// HelperPrefix is the prefix of helper programs, "docker-credential-".
	HelperPrefix string
	// Env is the environment of helper programs (nil: this process's).
	Env []string
}

// NewConfigFile returns the config file at path ("" for DefaultPath()). The file need not
// exist: it is created by the first Store.
func NewConfigFile(path string) *ConfigFile {
	if path == "" {
		path = DefaultPath()
	}
	return &ConfigFile{path: path, HelperPrefix: "docker-credential-"}
}

// Path returns the file's path.
func (f *ConfigFile) Path() string { return f.path }

// Load reads the credentials part of the file; a missing file is an empty Config.
func (f *ConfigFile) Load() (*Config, error) {
	c, _, err := f.load()
	return c, err
}

func (f *ConfigFile) load() (*Config, map[string]json.RawMessage, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	raw := map[string]json.RawMessage{}
	var c Config
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", f.path, err)
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", f.path, err)
		}
	}
	return &c, raw, nil
}

// helperFor returns the helper program's suffix for a server address, "" for none.
func (c *Config) helperFor(addr string) string {
	if h, ok := c.CredHelpers[addr]; ok {
		return h
	}
	host := NormalizeHost(addr)
	keys := make([]string, 0, len(c.CredHelpers))
	for k := range c.CredHelpers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if NormalizeHost(k) == host {
			return c.CredHelpers[k]
		}
	}
	return c.CredsStore
}

// entryKey returns the key of the auths entry for host, matching keys as Docker does: by
// normalised host (scheme and path stripped), the exact key first.
func (c *Config) entryKey(addr string) (string, bool) {
	if _, ok := c.Auths[addr]; ok {
		return addr, true
	}
	host := NormalizeHost(addr)
	keys := make([]string, 0, len(c.Auths))
	for k := range c.Auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if NormalizeHost(k) == host {
			return k, true
		}
	}
	return "", false
}

// Get returns the credentials for a registry ("host[:port]", "docker.io", or a URL):
// from its credential helper if one is configured and knows the registry, otherwise from
// "auths". No credentials is not an error: it returns empty ones.
func (f *ConfigFile) Get(ctx context.Context, registry string) (Credentials, error) {
	c, err := f.Load()
	if err != nil {
		return Credentials{}, err
	}
	addr := ServerAddress(registry)
	if h := c.helperFor(addr); h != "" {
		creds, found, err := f.helperGet(ctx, h, addr)
		if err != nil {
			return Credentials{}, err
		}
		if found {
			return creds, nil
		}
	}
	key, ok := c.entryKey(addr)
	if !ok {
		return Credentials{}, nil
	}
	creds, err := c.Auths[key].Credentials()
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: auths[%q]: %w", f.path, key, err)
	}
	return creds, nil
}

// Store saves credentials for a registry (after a successful login): through its credential
// helper if one is configured (the file then keeps an empty entry, as Docker's does), or in
// "auths" as base64 "auth" (and "identitytoken" when there is one, instead of the password).
func (f *ConfigFile) Store(ctx context.Context, registry string, creds Credentials) error {
	c, raw, err := f.load()
	if err != nil {
		return err
	}
	addr := ServerAddress(registry)
	if key, ok := c.entryKey(addr); ok {
		delete(c.Auths, key)
	}
	if c.Auths == nil {
		c.Auths = map[string]AuthEntry{}
	}
	if h := c.helperFor(addr); h != "" {
		if err := f.helperStore(ctx, h, addr, creds); err != nil {
			return err
		}
		c.Auths[addr] = AuthEntry{}
	} else {
		e := AuthEntry{IdentityToken: creds.IdentityToken, RegistryToken: creds.RegistryToken}
		pass := creds.Password
		if creds.IdentityToken != "" {
			pass = ""
		}
		if creds.Username != "" || pass != "" {
			e.Auth = base64.StdEncoding.EncodeToString([]byte(creds.Username + ":" + pass))
		}
		c.Auths[addr] = e
	}
	return f.write(raw, c)
}

// Erase removes the credentials of a registry (a logout): from its helper if one is
// configured, and from "auths". Erasing credentials that are not there is no error.
func (f *ConfigFile) Erase(ctx context.Context, registry string) error {
	c, raw, err := f.load()
	if err != nil {
		return err
	}
	addr := ServerAddress(registry)
	if h := c.helperFor(addr); h != "" {
		if err := f.helperErase(ctx, h, addr); err != nil {
			return err
		}
	}
	key, ok := c.entryKey(addr)
	if !ok {
		return nil
	}
	delete(c.Auths, key)
	return f.write(raw, c)
}

// write replaces the file with raw updated by c, atomically.
func (f *ConfigFile) write(raw map[string]json.RawMessage, c *Config) error {
	auths, err := json.Marshal(c.Auths)
	if err != nil {
		return err
	}
	raw["auths"] = auths
	data, err := json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	target := f.path
	if resolved, err := filepath.EvalSymlinks(target); err == nil {
		target = resolved // keep a symlinked config file a symlink
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(target)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

// notFoundMessage is what credential helpers print when they know nothing of a server.
const notFoundMessage = "credentials not found in native keychain"

// helperToken is the username by which helpers mark an identity token.
const helperToken = "<token>"

type helperCreds struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// runHelper runs HelperPrefix+name with one argument and the given standard input.
func (f *ConfigFile) runHelper(ctx context.Context, name, action string, stdin []byte) ([]byte, error) {
	if strings.ContainsAny(name, `/\`) || name == "" {
		return nil, fmt.Errorf("invalid credential helper name %q", name)
	}
	prog := f.HelperPrefix + name
	cmd := exec.CommandContext(ctx, prog, action)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = f.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stdout.String())
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if msg == notFoundMessage {
			return nil, errHelperNotFound
		}
		if msg != "" {
			return nil, fmt.Errorf("credential helper %s %s: %v: %s", prog, action, err, msg)
		}
		return nil, fmt.Errorf("credential helper %s %s: %v", prog, action, err)
	}
	return stdout.Bytes(), nil
}

var errHelperNotFound = errors.New(notFoundMessage)

func (f *ConfigFile) helperGet(ctx context.Context, name, addr string) (Credentials, bool, error) {
	out, err := f.runHelper(ctx, name, "get", []byte(addr))
	if errors.Is(err, errHelperNotFound) {
		return Credentials{}, false, nil
	}
	if err != nil {
		return Credentials{}, false, err
	}
	var hc helperCreds
	if err := json.Unmarshal(out, &hc); err != nil {
		return Credentials{}, false, fmt.Errorf("credential helper %s%s get: invalid answer: %v", f.HelperPrefix, name, err)
	}
	if hc.Username == helperToken {
		return Credentials{IdentityToken: hc.Secret}, true, nil
	}
	return Credentials{Username: hc.Username, Password: hc.Secret}, true, nil
}

func (f *ConfigFile) helperStore(ctx context.Context, name, addr string, creds Credentials) error {
	hc := helperCreds{ServerURL: addr, Username: creds.Username, Secret: creds.Password}
	if creds.IdentityToken != "" {
		hc.Username, hc.Secret = helperToken, creds.IdentityToken
	}
	in, err := json.Marshal(hc)
	if err != nil {
		return err
	}
	_, err = f.runHelper(ctx, name, "store", in)
	return err
}

func (f *ConfigFile) helperErase(ctx context.Context, name, addr string) error {
	_, err := f.runHelper(ctx, name, "erase", []byte(addr))
	if errors.Is(err, errHelperNotFound) {
		return nil
	}
	return err
}

// CredentialFunc returns f.Get as the auth transport's credential source.
func (f *ConfigFile) CredentialFunc() transport.CredentialFunc { return f.Get }

// Static returns a credential source that gives creds for registry (compared after
// NormalizeHost) and nothing for any other.
func Static(registry string, creds Credentials) transport.CredentialFunc {
	want := NormalizeHost(registry)
	return func(_ context.Context, host string) (Credentials, error) {
		if NormalizeHost(host) == want {
			return creds, nil
		}
		return Credentials{}, nil
	}
}

// Helper returns a credential source that asks the credential helper
// docker-credential-NAME (the same protocol as credHelpers in the config file) for the
// credentials of each registry, without a config file: a server that authenticates to an
// upstream with, say, ecr-login. A helper that knows no credentials for the registry gives
// none (anonymous access); env is the helper's environment (nil: this process's).
func Helper(name string, env []string) transport.CredentialFunc {
	f := &ConfigFile{HelperPrefix: "docker-credential-", Env: env}
	return func(ctx context.Context, registry string) (Credentials, error) {
		creds, _, err := f.helperGet(ctx, name, ServerAddress(registry))
		return creds, err
	}
}
