package client_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/internal/testpki"
	"github.com/berthhq/berth/client/service"
	"github.com/berthhq/berth/client/transport"
)

func serviceOptions(t testing.TB, mirrors, insecure []string) service.Options {
	return service.Options{Mirrors: mirrors, InsecureRegistries: insecure, CertsDir: t.TempDir()}
}

// TestBasicAuthLogin logs in to the distribution registry with htpasswd (Basic)
// authentication, stores the credentials in a Docker config file, and pushes and pulls
// with them.
func TestBasicAuthLogin(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, htpasswd, []byte("alice:"+string(hash)+"\n"))
	dist := startDistribution(t, distOptions{htpasswd: htpasswd})

	l, img, _, _ := testImages(t)
	ref := mustRef(t, dist+"/private/app:1")

	anon := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	_, err = anon.GetManifest(ctx, ref)
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("anonymous pull: %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), ref.String()) {
		t.Errorf("error %q does not name the reference", err)
	}
	if _, err := anon.Push(ctx, l, "img", ref, client.CopyOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("anonymous push: %v, want ErrUnauthorized", err)
	}

	if _, err := anon.Login(ctx, dist, transport.Credentials{Username: "alice", Password: "wrong"}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("login with a wrong password: %v, want ErrUnauthorized", err)
	}
	creds, err := anon.Login(ctx, dist, transport.Credentials{Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	cf := credentials.NewConfigFile(filepath.Join(t.TempDir(), "config.json"))
	if err := cf.Store(ctx, dist, creds); err != nil {
		t.Fatal(err)
	}

	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)), client.WithCredentials(cf.Get))
	if d, err := c.Push(ctx, l, "img", ref, client.CopyOptions{}); err != nil || d.Digest != img.Digest {
		t.Fatalf("push with stored credentials: %v, %v", d.Digest, err)
	}
	if tags, err := c.Tags(ctx, ref.Repo(), client.ListOptions{}); err != nil || len(tags) != 1 {
		t.Fatalf("tags: %v, %v", tags, err)
	}
	if _, err := c.Pull(ctx, ref, openLayout(t), client.CopyOptions{}); err != nil {
		t.Fatal(err)
	}

	// Logged out, anonymous again.
	if err := cf.Erase(ctx, dist); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, client.WithBaseTransport(loopbackTransport(nil)), client.WithCredentials(cf.Get)).GetManifest(ctx, ref); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("after logout: %v", err)
	}
}

// TestTLSCertsDir runs the distribution registry over HTTPS with a certificate from a test
// CA: it is reached only once the CA is in the certificates directory, and with
// client certificates required, only once client.cert and client.key are there too.
func TestTLSCertsDir(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "berth test CA")
	clientCA := testpki.NewCA(t, "berth test client CA")
	cert, key := ca.Server("registry.test")
	certPath := testpki.Write(t, dir, "server.crt", cert)
	keyPath := testpki.Write(t, dir, "server.key", key)
	clientCAPath := testpki.Write(t, dir, "client-ca.crt", clientCA.CertPEM)

	tlsAddr := startDistribution(t, distOptions{tlsCert: certPath, tlsKey: keyPath})
	mtlsAddr := startDistribution(t, distOptions{tlsCert: certPath, tlsKey: keyPath, clientCAs: clientCAPath})
	_, tlsPort, _ := strings.Cut(tlsAddr, ":")
	_, mtlsPort, _ := strings.Cut(mtlsAddr, ":")
	tlsHost, mtlsHost := "registry.test:"+tlsPort, "registry.test:"+mtlsPort

	certsDir := t.TempDir()
	opts := service.Options{CertsDir: certsDir}
	svc, err := service.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, client.WithService(svc),
		client.WithBaseTransport(loopbackTransport(map[string]string{tlsHost: tlsAddr, mtlsHost: mtlsAddr})))

	err = c.Ping(ctx, tlsHost)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("reached %s without its CA: %v", tlsHost, err)
	}
	testpki.Write(t, filepath.Join(certsDir, tlsHost), "ca.crt", ca.CertPEM)
	testpki.Write(t, filepath.Join(certsDir, mtlsHost), "ca.crt", ca.CertPEM)
	// Files are read when a configuration is built: a reload picks them up.
	if err := svc.Reload(opts); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx, tlsHost); err != nil {
		t.Fatalf("with ca.crt: %v", err)
	}
	l, img, _, _ := testImages(t)
	if d, err := c.Push(ctx, l, "img", mustRef(t, tlsHost+"/secure/app:1"), client.CopyOptions{}); err != nil || d.Digest != img.Digest {
		t.Fatalf("push over TLS: %v", err)
	}

	if err := c.Ping(ctx, mtlsHost); err == nil {
		t.Fatalf("reached %s without a client certificate", mtlsHost)
	}
	cc, ck := clientCA.Client("berth-client-test")
	testpki.Write(t, filepath.Join(certsDir, mtlsHost), "client.cert", cc)
	testpki.Write(t, filepath.Join(certsDir, mtlsHost), "client.key", ck)
	if err := svc.Reload(opts); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx, mtlsHost); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	// A copy between the two, by mount-free streaming across registries.
	if d, err := c.Copy(ctx, mustRef(t, tlsHost+"/secure/app:1"), mustRef(t, mtlsHost+"/mutual/app:1"), client.CopyOptions{}); err != nil || d.Digest != img.Digest {
		t.Fatalf("copy to the mTLS registry: %v", err)
	}
}

// evilRegistry serves a well-formed image whose one layer has the wrong bytes, and a
// manifest whose announced digest is not its own.
type evilRegistry struct {
	srv           *httptest.Server
	manifest      []byte
	config, layer []byte
	layerDigest   digest.Digest
}

func newEvilRegistry(t *testing.T) *evilRegistry {
	t.Helper()
	e := &evilRegistry{config: []byte(`{"architecture":"amd64","os":"linux"}`)}
	good := randomBytes(100<<10, 77)
	e.layerDigest = digest.FromBytes(good)
	e.layer = bytes.Clone(good)
	e.layer[len(e.layer)/2] ^= 0xff // same size, other content
	e.manifest = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(e.config).String() +
		`","size":` + strconv.Itoa(len(e.config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` +
		e.layerDigest.String() + `","size":` + strconv.Itoa(len(good)) + `}]}`)
	md := digest.FromBytes(e.manifest)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v2/":
		case p == "/v2/evil/manifests/good" || p == "/v2/evil/manifests/"+md.String():
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", md.String())
			w.Write(e.manifest)
		case p == "/v2/evil/manifests/lying":
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", digest.FromString("something else").String())
			w.Write(e.manifest)
		case p == "/v2/evil/manifests/"+digest.FromString("asked for").String():
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write(e.manifest)
		case p == "/v2/evil/blobs/"+digest.FromBytes(e.config).String():
			w.Write(e.config)
		case p == "/v2/evil/blobs/"+e.layerDigest.String():
			w.Write(e.layer)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// TestDigestMismatch: content that does not match its digest is an ErrDigestMismatch, and
// nothing of it is kept as good, locally or in a destination registry.
func TestDigestMismatch(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	evil := newEvilRegistry(t)
	host := strings.TrimPrefix(evil.srv.URL, "http://")
	c := newClient(t, client.WithBaseTransport(loopbackTransport(nil)))
	repo := mustRef(t, host+"/evil")

	rc, err := c.GetBlob(ctx, repo, evil.layerDigest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, client.ErrDigestMismatch) {
		t.Fatalf("reading the bad layer: %v, want ErrDigestMismatch", err)
	}

	for _, ref := range []string{host + "/evil:lying", host + "/evil@" + digest.FromString("asked for").String()} {
		m, err := c.GetManifest(ctx, mustRef(t, ref))
		if !errors.Is(err, client.ErrDigestMismatch) || m != nil {
			t.Errorf("GetManifest(%s) = %v, %v; want nil and ErrDigestMismatch", ref, m, err)
		}
		if err != nil && !strings.Contains(err.Error(), "evil") {
			t.Errorf("error %q does not name the reference", err)
		}
	}
	if m, err := c.GetManifest(ctx, mustRef(t, host+"/evil:good")); err != nil || !bytes.Equal(m.Body, evil.manifest) {
		t.Fatalf("the good manifest: %v", err)
	}

	// Pull into a layout: the bad layer is not stored, and the image is not named.
	l := openLayout(t)
	_, err = c.Pull(ctx, mustRef(t, host+"/evil:good"), l, client.CopyOptions{})
	if !errors.Is(err, client.ErrDigestMismatch) {
		t.Fatalf("pull: %v, want ErrDigestMismatch", err)
	}
	if l.HasBlob(evil.layerDigest) {
		t.Error("the bad layer was stored")
	}
	if ms, err := l.Manifests(); err != nil || len(ms) != 0 {
		t.Errorf("the layout names %v after a failed pull (%v)", ms, err)
	}
	_ = filepath.WalkDir(l.Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})

	// Copy to berth: the upload is abandoned; the blob and the manifest never appear.
	berth := startBerth(t)
	dst := mustRef(t, berth+"/copied:good")
	_, err = c.Copy(ctx, mustRef(t, host+"/evil:good"), dst, client.CopyOptions{})
	if !errors.Is(err, client.ErrDigestMismatch) {
		t.Fatalf("copy: %v, want ErrDigestMismatch", err)
	}
	_, err = c.HeadBlob(ctx, dst.Repo(), evil.layerDigest)
	expectNotFound(t, "the bad layer in berth", err)
	_, err = c.HeadManifest(ctx, dst)
	expectNotFound(t, "the manifest in berth", err)
}
