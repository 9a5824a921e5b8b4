package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PostgresServer is a PostgreSQL server of one test's own, for tests of
// what berth does when its database goes away and comes back: Stop shuts
// it down (fast shutdown, as a failing or restarted server would), Start
// brings it back on the same port with the same data.
type PostgresServer struct {
	tb       testing.TB
	bin      string
	dir      string // data, socket and logs; removed when the test ends
	cred     *syscall.Credential
	port     int
	password string
	// control and exited belong to the running supervisor (nil when
	// stopped); see supervisor in postgres.go.
	control *os.File
	exited  *exitStatus
	logFile string
}

// StartPostgresServer starts a server for tb alone, with an empty
// database owned by a role that is not a superuser; DSN names it. The
// server stops when tb ends (or the test binary exits, however it does).
// It is skipped (failed in CI) without PostgreSQL, as StartPostgres is.
func StartPostgresServer(tb testing.TB) *PostgresServer {
	tb.Helper()
	bin, err := findPostgres()
	if err == nil {
		var cred *syscall.Credential
		if cred, err = serverCredential(); err == nil {
			p := &PostgresServer{tb: tb, bin: bin, cred: cred}
			if err = p.init(); err == nil {
				tb.Cleanup(p.cleanup)
				p.Start()
				return p
			}
		}
	}
	if errors.Is(err, errPostgresMissing) {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		tb.Skipf("PostgreSQL not available: %v", err)
	}
	tb.Fatalf("start PostgreSQL: %v", err)
	return nil
}

// init runs initdb into a new directory and picks the port.
func (p *PostgresServer) init() error {
	dir, err := os.MkdirTemp("", "berth-pgserver-")
	if err != nil {
		return err
	}
	p.dir = dir
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return err
		}
	}
	if p.password, err = randomHex(16); err != nil {
		return err
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.password+"\n"), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(p.bin, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", superuser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Env = serverEnv(dir)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := os.Remove(pwfile); err != nil {
		return err
	}
	p.port, err = freePort()
	p.logFile = filepath.Join(dir, "postgres.log")
	return err
}

// DSN is the URL of the test's database, as its owner.
func (p *PostgresServer) DSN() string {
	s := postgresServer{port: p.port, password: p.password}
	return s.dsn(testRole, "test")
}

// Start starts the server (again) and waits until it accepts connections;
// the first start creates the role and the database.
func (p *PostgresServer) Start() {
	p.tb.Helper()
	if p.control != nil {
		p.tb.Fatal("PostgresServer.Start: already running")
	}
	// The supervisor removes a directory when the server exits: give it
	// an empty one of its own, so the data outlives a Stop.
	scratch, err := os.MkdirTemp(p.dir, "run-")
	if err != nil {
		p.tb.Fatal(err)
	}
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer logf.Close()
	if p.cred != nil {
		for _, f := range []string{scratch, p.logFile} {
			if err := os.Chown(f, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				p.tb.Fatal(err)
			}
		}
	}
	sup := exec.Command("/bin/sh", "-c", supervisor, "supervisor", scratch,
		filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(p.port), "-k", p.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "log_min_messages=warning")
	sup.Env = serverEnv(p.dir)
	sup.Stdout, sup.Stderr = logf, logf
	sup.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		p.tb.Fatal(err)
	}
	sup.Stdin = r
	err = sup.Start()
	r.Close()
	if err != nil {
		w.Close()
		p.tb.Fatalf("start postgres: %v", err)
	}
	p.control, p.exited = w, &exitStatus{done: make(chan struct{})}
	exited := p.exited
	go func() {
		exited.err = sup.Wait()
		close(exited.done)
	}()
	srv := &postgresServer{port: p.port, password: p.password}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	admin, err := srv.waitReady(ctx, exited)
	if err != nil {
		log, _ := os.ReadFile(p.logFile)
		p.tb.Fatalf("postgres: %v\n%s", err, log)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", testRole).Scan(&exists); err != nil {
		p.tb.Fatal(err)
	}
	if !exists {
		for _, q := range []string{
			fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", testRole, p.password),
			fmt.Sprintf("CREATE DATABASE test OWNER %s", testRole),
		} {
			if _, err := admin.Exec(ctx, q); err != nil {
				p.tb.Fatalf("%s: %v", q, err)
			}
		}
	}
}

// Stop shuts the server down (a fast shutdown: connections are cut) and
// waits until it is gone.
func (p *PostgresServer) Stop() {
	p.tb.Helper()
	if p.control == nil {
		return
	}
	p.control.Close()
	select {
	case <-p.exited.done:
	case <-time.After(time.Minute):
		p.tb.Fatal("postgres did not stop within a minute")
	}
	p.control, p.exited = nil, nil
}

func (p *PostgresServer) cleanup() {
	if p.control != nil {
		p.control.Close()
		<-p.exited.done
	}
	_ = os.RemoveAll(p.dir)
}
