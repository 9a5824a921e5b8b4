package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certAuthority signs certificates for the TLS tests.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

func newCA(t testing.TB, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certAuthority{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a certificate; server ones are for 127.0.0.1. It returns PEM certificate and
// key, and the serial number.
func (ca *certAuthority) leaf(t testing.TB, cn string, server bool) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), serial
}

func mustKeyPair(t testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (ca *certAuthority) clientCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	c, k, _ := ca.leaf(t, cn, false)
	return mustKeyPair(t, c, k)
}

// tlsConfigFile writes an example configuration with a tls section added.
func tlsConfigFile(t testing.TB, example, tlsSection string) string {
	t.Helper()
	cfg := exampleConfig(t, example)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(cfg), filepath.Base(cfg), append(data, []byte("\n"+tlsSection)...))
	return cfg
}

// TestAuthTLS serves HTTPS with client certificates: a verified certificate logs its
// common name in (admin may push without a password, reader may not), a certificate from
// another CA is refused at the handshake, a renewed server certificate is used from the
// next connection on, and token mode's realm follows the scheme.
func TestAuthTLS(t *testing.T) {
	t.Parallel()
	serverCA, clientCA, rogueCA := newCA(t, "server CA"), newCA(t, "client CA"), newCA(t, "rogue CA")
	cfg := tlsConfigFile(t, "auth-basic.yaml", "tls:\n  cert: server.pem\n  key: server-key.pem\n  clientCA: clients.pem\n")
	dir := filepath.Dir(cfg)
	certPEM, keyPEM, serial1 := serverCA.leaf(t, "berth", true)
	writeFile(t, dir, "server.pem", certPEM)
	writeFile(t, dir, "server-key.pem", keyPEM)
	writeFile(t, dir, "clients.pem", clientCA.PEM)
	roots := caPool(t, serverCA.PEM)
	srv := startAuthBerth(t, cfg, &tls.Config{RootCAs: roots})

	// withCert returns a client presenting cert (none when nil), on fresh connections.
	withCert := func(cert *tls.Certificate, user, pass string) *regClient {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c := srv.client(t, user, pass)
		c.hc.Transport.(*authTransport).next = &http.Transport{Proxy: nil, TLSClientConfig: tc, DisableKeepAlives: true}
		return c
	}
	adminCert, readerCert, rogueCert := clientCA.clientCert(t, "admin"), clientCA.clientCert(t, "reader"), rogueCA.clientCert(t, "admin")

	img := newImage(t, "linux", "amd64", 1)
	byCert := withCert(&adminCert, "", "")
	byCert.pushImage("tls/app", "v1", img)
	withCert(nil, adminUser, adminPass).checkImage("tls/app", img)
	readerByCert := withCert(&readerCert, "", "")
	readerByCert.checkImage("tls/app", img)
	if r := readerByCert.request("POST", "/v2/tls/app/blobs/uploads/", nil); r.Status != http.StatusForbidden || errorCode(r) != "DENIED" {
		t.Errorf("reader's certificate pushing: %s", r)
	}
	if st := withCert(nil, "", "").manifestStatus("tls/app", "v1"); st != http.StatusUnauthorized {
		t.Errorf("no certificate and no password: %d", st)
	}
	// Sent even though the server asks for certificates of another CA (a client would
	// otherwise leave it out).
	force := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogueCert, nil }
	rogue := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots, GetClientCertificate: force}}}
	if resp, err := rogue.Get(srv.URL() + "/v2/tls/app/tags/list"); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate from another CA was accepted: %s", resp.Status)
	}
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}}
	if resp, err := plain.Get("http://" + srv.Addr + "/v2/"); err == nil {
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port: %s", resp.Status)
		}
		resp.Body.Close()
	}

	// Renewal: new files, then the next connection gets the new certificate.
	serialOf := func() *big.Int {
		conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got := serialOf(); got.Cmp(serial1) != 0 {
		t.Fatalf("serving serial %v, want %v", got, serial1)
	}
	certPEM, keyPEM, serial2 := serverCA.leaf(t, "berth", true)
	writeFile(t, dir, "server-key.pem", keyPEM)
	writeFile(t, dir, "server.pem", certPEM)
	if got := serialOf(); got.Cmp(serial2) != 0 {
		t.Fatalf("after renewal serving serial %v, want %v", got, serial2)
	}
	withCert(&adminCert, "", "").checkImage("tls/app", img)

	// Token mode over TLS: the realm is https, and certificates log in at the token service.
	tcfg := tlsConfigFile(t, "auth-token.yaml", "tls:\n  cert: server.pem\n  key: server-key.pem\n  clientCA: clients.pem\n  clientAuth: require\n")
	writeFile(t, filepath.Dir(tcfg), "server.pem", certPEM)
	writeFile(t, filepath.Dir(tcfg), "server-key.pem", keyPEM)
	writeFile(t, filepath.Dir(tcfg), "clients.pem", clientCA.PEM)
	tsrv := startAuthBerth(t, tcfg, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{adminCert}})
	traw := &regClient{t: t, base: mustParseURL(t, tsrv.URL()), hc: tsrv.httpClient()}
	r := traw.expect(traw.request("GET", "/v2/tls/app/tags/list", nil, "Authorization", "Bearer not-a-token"), http.StatusUnauthorized)
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="https://`+tsrv.Addr+`/token",`) {
		t.Errorf("challenge over TLS: %s", h)
	}
	tr := fetchToken(t, tsrv, "", "", nil, "repository:tls/app:pull,push")
	tsrv.client(t, "", "").pushImage("tls/app", "v1", img) // the certificate alone
	traw.expect(traw.request("GET", "/v2/tls/app/tags/list", nil, "Authorization", "Bearer "+tr.Token), http.StatusOK)
	noCert := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if resp, err := noCert.Get(tsrv.URL() + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("clientAuth require: a connection without a certificate got %s", resp.Status)
	}
}
