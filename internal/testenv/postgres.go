// Package testenv starts the real services that tests need, once per test
// binary, and hands each test an isolated piece of them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPostgres returns the connection string (a postgres:// URL) of a new,
// empty database, dropped when tb ends. The database is owned by a role
// that is not a superuser, as an application's role would be.
//
// The first call starts a PostgreSQL server private to the test binary:
// Debian's binaries (/usr/lib/postgresql/VERSION/bin, the newest version
// found; else initdb and postgres on PATH) run as the postgres system user
// when the tests run as root, on 127.0.0.1 and a free port, with fsync off
// and its files in a temporary directory. Later calls, from any test and
// in parallel, share that server and get a database each. The server
// stops and its directory is removed when the test binary exits, however
// it exits (see startPostgres).
//
// Without PostgreSQL the test is skipped with the reason, except in CI
// (CI=true), where a missing dependency fails it: install the server with
// ../shared/tools/install-debs.sh postgresql.
func StartPostgres(tb testing.TB) string {
	tb.Helper()
	srv, err := sharedPostgres()
	if err != nil {
		if errors.Is(err, errPostgresMissing) {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("PostgreSQL is required in CI: %v", err)
			}
			tb.Skipf("PostgreSQL not available: %v (install it with ../shared/tools/install-debs.sh postgresql)", err)
		}
		tb.Fatalf("start PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := srv.createDatabase(ctx)
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.dropDatabase(ctx, name); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	return srv.dsn(testRole, name)
}

// errPostgresMissing marks the errors that mean PostgreSQL is not installed
// (or cannot run here), as opposed to a server that failed to start.
var errPostgresMissing = errors.New("PostgreSQL is missing")

// sharedPostgres starts the test binary's server on first use and returns
// it, or the error that stopped it, to every caller. The server belongs to
// the whole binary (tests in parallel share it), so it is package state;
// holding it here also keeps its control pipe open until the binary exits.
var sharedPostgres = sync.OnceValues(startPostgres)

const (
	// superuser is the role initdb creates; it creates and drops databases.
	superuser = "postgres"
	// testRole owns the test databases and is what tests connect as.
	testRole = "berth"
	// startTimeout bounds initdb plus the wait for the first connection.
	startTimeout = 2 * time.Minute
)

// postgresServer is a running server and an open superuser connection to
// it for creating and dropping databases.
type postgresServer struct {
	port     int
	password string // of superuser and testRole
	dir      string // initdb's and the socket's, removed after the server stops
	// createOptions end CREATE DATABASE: copying the template's files
	// takes a fraction of the time of the WAL-logged copy PostgreSQL 15
	// made the default, and durability does not matter here.
	createOptions string

	mu     sync.Mutex // serializes use of admin
	admin  *pgx.Conn
	nextDB atomic.Int64

	// control is the write end of the supervisor's stdin; the server stops
	// when it is closed, which the kernel does when the binary exits.
	control *os.File
}

// supervisor runs the server (the command in its arguments, after the
// directory to remove) as a child and stops it with a fast shutdown
// (SIGINT) once its standard input reaches end of file. The test binary
// holds the only write end of that pipe, and the kernel closes it however
// the binary ends (even by SIGKILL or a test timeout), so the server never
// outlives it. After the server exits the supervisor removes the
// directory and exits, also when the server stopped by itself (a failed
// start). A server started with pg_ctl would instead be detached and
// outlive a test binary that did not get to stop it.
//
// Background jobs of a non-interactive shell read /dev/null, hence the
// copy of the pipe on descriptor 3.
const supervisor = `
dir=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
{ read -r _ <&3; kill -INT "$pid"; } >/dev/null 2>&1 &
reader=$!
wait "$pid"
status=$?
kill "$reader" 2>/dev/null
wait
rm -rf -- "$dir"
exit $status
`

// startPostgres finds the binaries, runs initdb into a new temporary
// directory and starts the server, starting over (the supervisor removed
// the directory) if the port it picked was taken in the meantime.
func startPostgres() (*postgresServer, error) {
	for attempt := 1; ; attempt++ {
		srv, err := startPostgresOnce()
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return srv, err
		}
	}
}

// startPostgresOnce makes one attempt of startPostgres.
func startPostgresOnce() (*postgresServer, error) {
	bin, err := findPostgres()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "berth-postgres-")
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	password, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		return nil, err
	}

	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", superuser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Env = serverEnv(dir)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := os.Remove(pwfile); err != nil {
		return nil, err
	}

	srv, err := runServer(ctx, bin, dir, data, cred, password)
	if err != nil {
		return nil, err
	}
	started = true
	return srv, nil
}

// errPortTaken is a server start that failed because another process took
// the port between the probe and the server's bind.
var errPortTaken = errors.New("port taken")

// runServer starts the server under the supervisor on a free port, waits
// until it accepts connections and prepares the test role. On error the
// server is stopped.
func runServer(ctx context.Context, bin, dir, data string, cred *syscall.Credential, password string) (_ *postgresServer, err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// The log is opened here and its descriptor kept, so its contents can
	// be read even after the supervisor removed the directory.
	logFile, err := os.CreateTemp(dir, "postgres-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	if cred != nil {
		if err := logFile.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}

	sup := exec.Command("/bin/sh", "-c", supervisor, "supervisor", dir,
		filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-p", strconv.Itoa(port),
		"-k", dir, // the unix socket, instead of /var/run/postgresql
		// A test server: durability is not needed, speed is.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
	)
	sup.Env = serverEnv(dir)
	sup.Stdout, sup.Stderr = logFile, logFile
	// Its own process group: a ^C in the terminal reaches the test binary,
	// whose exit then stops the server in order, and not the shell.
	sup.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	sup.Stdin = r
	err = sup.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := &exitStatus{done: make(chan struct{})}
	go func() {
		exited.err = sup.Wait()
		close(exited.done)
	}()

	srv := &postgresServer{port: port, password: password, dir: dir, control: w}
	defer func() {
		if err != nil {
			if srv.admin != nil {
				srv.admin.Close(context.Background())
			}
			srv.control.Close()
			<-exited.done
			log := readLog(logFile)
			if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
				err = fmt.Errorf("%w: %v", errPortTaken, err)
			}
			err = fmt.Errorf("%w\nserver log:\n%s", err, log)
		}
	}()

	if srv.admin, err = srv.waitReady(ctx, exited); err != nil {
		return nil, err
	}
	// The password is random hex, so quoting it is safe.
	if _, err := srv.admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", testRole, password)); err != nil {
		return nil, fmt.Errorf("create role: %w", err)
	}
	var version int
	if err := srv.admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, err
	}
	if version >= 150000 {
		srv.createOptions = " STRATEGY FILE_COPY"
	}
	return srv, nil
}

// waitReady connects to the server, polling until it accepts connections,
// the supervisor exits or ctx ends.
func (srv *postgresServer) waitReady(ctx context.Context, exited *exitStatus) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(srv.dsn(superuser, "postgres"))
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 5 * time.Second
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn, nil
		}
		select {
		case <-exited.done:
			return nil, fmt.Errorf("postgres exited before accepting connections: %v", exited.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres did not accept connections within %v: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

// exitStatus is the supervisor's exit: err is set before done is closed.
type exitStatus struct {
	done chan struct{}
	err  error
}

// dsn is the URL of database db for role.
func (srv *postgresServer) dsn(role, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(role, srv.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// createDatabase creates a new, empty database owned by testRole and
// returns its name.
func (srv *postgresServer) createDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", srv.nextDB.Add(1))
	srv.mu.Lock()
	defer srv.mu.Unlock()
	_, err := srv.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s%s", name, testRole, srv.createOptions))
	return name, err
}

// dropDatabase drops database name, closing what connections to it are
// left (a store the test did not close).
func (srv *postgresServer) dropDatabase(ctx context.Context, name string) error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	_, err := srv.admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	return err
}

// findPostgres returns the directory holding initdb and postgres.
func findPostgres() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: "9.6" < "10" < "15" numerically.
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, dir := range dirs {
		if executable(filepath.Join(dir, "initdb")) && executable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(initdb)
		if executable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH", errPostgresMissing)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential returns whom to run the server as: nil (this process's
// user) unless this process is root, which PostgreSQL refuses to run as;
// then the postgres system user that Debian's package creates.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, and no postgres user to run the server as: %v", errPostgresMissing, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// serverEnv is the environment of initdb and the server: this process's,
// without the PG* variables that would redirect them, with messages in
// English (runServer reads the log) and HOME in the server's directory.
func serverEnv(dir string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") ||
			strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "HOME=")
	})
	return append(env, "LANG=C", "LC_ALL=C", "HOME="+dir)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// readLog returns what the server wrote to f, for an error message.
func readLog(f *os.File) string {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	return string(b)
}
