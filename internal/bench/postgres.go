package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// postgres is a PostgreSQL server started by the harness: Debian's
// binaries, run as the postgres user when this process is root, trusting
// local connections, without durability (fsync off).
type postgres struct {
	DSN  string
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// findPostgresBin returns the newest /usr/lib/postgresql/*/bin holding
// initdb and postgres.
func findPostgresBin() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, d := range dirs {
		if executableFile(filepath.Join(d, "initdb")) && executableFile(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

// postgresCredential is whom the server runs as: nil unless root, then
// the postgres user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres user: %v", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// startPostgres installs PostgreSQL if needed (install-debs.sh
// postgresql), runs initdb in a new temporary directory and starts the
// server on a free loopback port.
func startPostgres(ctx context.Context, log interface{ Write([]byte) (int, error) }) (*postgres, error) {
	bin, ok := findPostgresBin()
	if !ok {
		if _, err := sharedTool(ctx, log, "install-debs.sh", "postgresql", "initdb", "/usr/lib/postgresql/15/bin/initdb"); err != nil {
			if bin, ok = findPostgresBin(); !ok {
				return nil, err
			}
		}
		if bin, ok = findPostgresBin(); !ok {
			return nil, fmt.Errorf("no /usr/lib/postgresql/*/bin after install-debs.sh postgresql")
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	// Its own directory: the run's is private to root.
	dir, err := os.MkdirTemp("", "berth-bench-postgres-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	env := append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "HOME=")
	}), "LANG=C", "LC_ALL=C", "HOME="+dir)
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Env = env
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	lf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-c", "listen_addresses=127.0.0.1", "-p", port, "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "log_min_messages=warning")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	p := &postgres{DSN: "postgres://postgres@" + addr + "/postgres?sslmode=disable&pool_max_conns=20", dir: dir, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			// Accepting TCP is not accepting queries; pg_isready would
			// tell, a short wait does too.
			time.Sleep(500 * time.Millisecond)
			return p, nil
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(lf.Name())
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited at start: %v\n%s", err, tailString(string(b), 4096))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("postgres did not listen within a minute")
		}
	}
}

// Stop stops the server (fast shutdown) and removes its directory.
func (p *postgres) Stop() {
	if p == nil || p.cmd == nil {
		return
	}
	stopProcess(p.cmd.Process, p.done, syscall.SIGINT, 20*time.Second)
	p.cmd = nil
	_ = removeAll(p.dir, 4)
}

// berthPostgresConfig is berth's configuration with its metadata in
// PostgreSQL at dsn.
func berthPostgresConfig(dsn string) string {
	return fmt.Sprintf("metadata:\n  driver: postgres\n  dsn: %q\n", dsn)
}

// pgCatalogWorkload is the catalog page-through with berth's metadata on
// PostgreSQL, against distribution as in the catalog workload.
func (r *runner) pgCatalogWorkload(ctx context.Context, rep *Report) error {
	berth, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	pg, err := startPostgres(ctx, r.log)
	if err != nil {
		return notRun{what: "catalog page-through with berth on PostgreSQL metadata", why: err.Error()}
	}
	defer pg.Stop()
	r.stopPair()
	b := newConfiguredBerth(berth, filepath.Join(r.dir, "pgcatalog-berth"), "berth", berthPostgresConfig(pg.DSN))
	d := NewDistribution(r.tools.Distribution, filepath.Join(r.dir, "pgcatalog-distribution"))
	b.label, d.label = "pgcatalog", "pgcatalog"
	r.servers = []*Server{b, d}
	if err := r.startServers(ctx, b, d); err != nil {
		r.servers = nil
		return err
	}
	r.clients = []*Client{NewClient(b.URL(), 128), NewClient(d.URL(), 128)}
	defer func() {
		r.stopPair()
		if !r.cfg.Keep {
			for _, p := range []string{"pgcatalog-berth", "pgcatalog-distribution"} {
				_ = removeAll(filepath.Join(r.dir, p), 4)
			}
		}
	}()
	if err := r.catalogSizes(ctx, rep, []int{r.sz.PGRepos},
		fmt.Sprintf("Catalog page-through with berth's metadata on PostgreSQL, n=%d", r.sz.Page), false); err != nil {
		return err
	}
	s := &rep.Sections[len(rep.Sections)-1]
	s.About += " berth runs with `metadata.driver: postgres` on a PostgreSQL server of its own (Debian's, fsync off); its repositories are made as in the catalog workload (one cross-repository mount each, through the API), and distribution's too (copies of one repository's directory tree)."
	return nil
}
