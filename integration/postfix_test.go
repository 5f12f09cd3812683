package integration

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// Test accounts and addresses of the private Postfix.
const (
	saslUser     = "monitor@probe.test"
	saslPassword = "Corr3ct-H0rse-Battery"
	sinkAddr     = "sink@probe.test"
	// inboxAddr is delivered over LMTP to the private Dovecot, which serves
	// it over IMAP (with inboxPassword) when the instance has IMAP.
	inboxAddr     = "inbox@probe.test"
	inboxPassword = "Inb0x-Pa55-Staple"
	// heldAddr is accepted, and its mail put on hold: it never arrives.
	heldAddr = "held@probe.test"
)

// postfix is a private Postfix instance: its own config, queue, data and
// mail directories under a temp dir, listening on loopback ports only, with
// a private Dovecot for SASL AUTH.
type postfix struct {
	dir string
	// the listeners
	plain, implicit, submission, small, postscreen string
	caFile, certFile, keyFile                      string
	certNotAfter                                   time.Time // the server certificate's expiry
	// imap is set when Dovecot also delivers over LMTP and serves IMAP:
	// imapPlain (STARTTLS offered) and imapImplicit (IMAPS) are its listeners.
	imap                    bool
	imapPlain, imapImplicit string
	// oauthKey, when set, is the HS256 key with which Dovecot's oauth2
	// passdb validates XOAUTH2 and OAUTHBEARER tokens itself (see
	// dovecotOAuth).
	oauthKey []byte
}

func (p *postfix) maildir() string { return filepath.Join(p.dir, "mail", "sink", "new") }

// inboxMaildir is the Maildir that Dovecot keeps for inboxAddr.
func (p *postfix) inboxMaildir() string { return filepath.Join(p.dir, "vmail", "inbox", "Maildir") }

// requireIMAP checks what Dovecot's IMAP and LMTP services need.
func requireIMAP(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"imap", "imap-login", "lmtp"} {
		_, err := os.Stat(filepath.Join("/usr/lib/dovecot", bin))
		testenv.Require(t, err == nil, "dovecot's %s is not installed (dovecot-imapd, dovecot-lmtpd)", bin)
	}
	for _, name := range []string{"dovecot", "dovenull"} {
		_, err := user.Lookup(name)
		testenv.Require(t, err == nil, "there is no %s user", name)
	}
}

// requirePostfix checks what a private Postfix needs: the binaries and root.
func requirePostfix(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/usr/sbin/postfix")
	testenv.Require(t, err == nil, "postfix is not installed")
	_, err = os.Stat("/usr/sbin/dovecot")
	testenv.Require(t, err == nil, "dovecot (dovecot-core, for SASL AUTH) is not installed")
	testenv.Require(t, os.Geteuid() == 0, "a private Postfix needs root")
	_, err = user.Lookup("postfix")
	testenv.Require(t, err == nil, "there is no postfix user")
}

// startPostfix writes the instance's config and starts it; it is stopped
// and removed when the test ends.
func startPostfix(t *testing.T) *postfix {
	t.Helper()
	return startPostfixWith(t, &postfix{})
}

// startPostfixIMAP starts an instance whose Dovecot also takes inboxAddr's
// mail over LMTP and serves it over IMAP on loopback.
func startPostfixIMAP(t *testing.T) *postfix {
	t.Helper()
	return startPostfixWith(t, &postfix{imap: true})
}

// startPostfixOAuth starts an instance whose submission listener also takes
// AUTH XOAUTH2 and OAUTHBEARER with JWTs signed with key (HS256).
func startPostfixOAuth(t *testing.T, key []byte) *postfix {
	t.Helper()
	return startPostfixWith(t, &postfix{oauthKey: key})
}

// startPostfixWith starts the instance that p's options (imap, oauthKey)
// describe.
func startPostfixWith(t *testing.T, p *postfix) *postfix {
	t.Helper()
	requirePostfix(t)
	withIMAP := p.imap
	if withIMAP {
		requireIMAP(t)
	}
	dir, err := os.MkdirTemp("", "smtp_exporter-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	for _, d := range []string{"etc", "queue", "data", "mail", "dovecot", "tls", "vmail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755) // the postfix user must traverse it
	pf, _ := user.Lookup("postfix")
	nobody, _ := user.Lookup("nobody")
	chown(t, filepath.Join(dir, "data"), pf)
	chown(t, filepath.Join(dir, "mail"), nobody)
	chown(t, filepath.Join(dir, "vmail"), nobody)

	pki := testpki.New(t, time.Now().Add(-time.Hour), time.Now().Add(7*24*time.Hour), "mx.probe.test", "127.0.0.1")
	p.caFile, p.certFile, p.keyFile = pki.WriteFiles(t, filepath.Join(dir, "tls"))
	p.certNotAfter = pki.Leaf.NotAfter
	p.plain, p.implicit, p.submission, p.small, p.postscreen =
		testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	if withIMAP {
		p.imapPlain, p.imapImplicit = testenv.FreeAddr(t), testenv.FreeAddr(t)
	}

	write(t, filepath.Join(dir, "etc", "main.cf"), p.mainCF(nobody))
	write(t, filepath.Join(dir, "etc", "master.cf"), p.masterCF())

	t.Cleanup(func() { p.stop(t) })
	p.startDovecot(t)
	if out, err := p.postfixCmd("start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\nmaillog:\n%s", err, out, p.maillog())
	}
	for _, a := range []string{p.plain, p.implicit, p.submission, p.small, p.postscreen} {
		waitListening(t, a)
	}
	if withIMAP {
		waitListening(t, p.imapPlain)
		waitListening(t, p.imapImplicit)
	}
	return p
}

func (p *postfix) mainCF(nobody *user.User) string {
	d := p.dir
	return fmt.Sprintf(`# private test instance of smtp_exporter's integration tests
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
myhostname = mx.probe.test
mydomain = probe.test
mydestination =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.2/32
alias_maps =
alias_database =
smtputf8_enable = no
biff = no
virtual_mailbox_domains = probe.test
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = inline:{ %[3]s=sink/, %[4]s=inbox/, %[5]s=held/ }
transport_maps = inline:{ {%[4]s=lmtp:unix:%[1]s/dovecot/lmtp}, {%[5]s=lmtp:unix:%[1]s/dovecot/lmtp} }
virtual_uid_maps = static:%[2]s
virtual_gid_maps = static:%[2]s
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access inline:{ {reject@probe.test=550 5.1.1 No such user here}, {defer@probe.test=450 4.2.0 Mailbox busy, try again later}, {%[5]s=HOLD} }
smtpd_tls_cert_file = %[1]s/tls/cert.pem
smtpd_tls_key_file = %[1]s/tls/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = %[1]s/dovecot/auth/auth
postscreen_cache_map = btree:$data_directory/postscreen_cache
postscreen_greet_wait = 2s
postscreen_greet_action = enforce
postscreen_dnsbl_sites =
`, d, nobody.Uid, sinkAddr, inboxAddr, heldAddr)
}

func (p *postfix) masterCF() string {
	return fmt.Sprintf(`%s inet n - n - - smtpd
%s inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
%s inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
%s inet n - n - - smtpd
  -o message_size_limit=400
  -o cleanup_service_name=smallcleanup
smallcleanup unix n - n - 0 cleanup
  -o message_size_limit=400
%s inet n - n - 1 postscreen
smtpd     pass  -       -       n       -       -       smtpd
dnsblog   unix  -       -       n       -       0       dnsblog
tlsproxy  unix  -       -       n       -       0       tlsproxy
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, p.plain, p.implicit, p.submission, p.small, p.postscreen)
}

// postfixCmd runs `postfix -c <etc> cmd`. Postfix prints its fatal errors
// only to a terminal or syslog, so a failure also shows the instance's log.
func (p *postfix) postfixCmd(cmd string) (string, error) {
	out, err := exec.Command("/usr/sbin/postfix", "-c", filepath.Join(p.dir, "etc"), cmd).CombinedOutput()
	return string(out), err
}

// release takes a message off the hold queue, for delivery.
func (p *postfix) release(queueID string) error {
	etc := filepath.Join(p.dir, "etc")
	out, err := exec.Command("/usr/sbin/postsuper", "-c", etc, "-H", queueID).CombinedOutput()
	if err != nil {
		return fmt.Errorf("postsuper -H %s: %w: %s", queueID, err, out)
	}
	// Released mail waits in the deferred queue for the next queue run:
	// ask for its delivery now.
	if out, err := exec.Command("/usr/sbin/postqueue", "-c", etc, "-i", queueID).CombinedOutput(); err != nil {
		return fmt.Errorf("postqueue -i %s: %w: %s", queueID, err, out)
	}
	return nil
}

func (p *postfix) maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

func (p *postfix) stop(t *testing.T) {
	if os.Getenv("KEEP_POSTFIX") != "" { // debugging aid: leave the instances up
		t.Logf("KEEP_POSTFIX: instance left running in %s (stop with: postfix -c %s/etc stop; kill $(cat %s/dovecot/run/master.pid))", p.dir, p.dir, p.dir)
		return
	}
	if out, err := p.postfixCmd("stop"); err != nil {
		t.Logf("postfix stop: %v %s", err, out)
	}
	// master exits after its children; wait so that nothing is left running.
	pidFile := filepath.Join(p.dir, "queue", "pid", "master.pid")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			break
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid == 0 || !alive(pid) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stopDovecot()
	if t.Failed() {
		t.Logf("postfix maillog:\n%s", p.maillog())
	}
	os.RemoveAll(p.dir)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// A zombie (state Z) has exited.
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// startDovecot runs a private Dovecot that only answers Postfix's SASL
// requests, from a passwd-file with the test account, on a socket in the
// instance's directory.
func (p *postfix) startDovecot(t *testing.T) {
	d := filepath.Join(p.dir, "dovecot")
	if err := os.MkdirAll(filepath.Join(d, "auth"), 0o755); err != nil {
		t.Fatal(err)
	}
	users := saslUser + ":{PLAIN}" + saslPassword + "\n"
	if p.imap {
		nobody, _ := user.Lookup("nobody")
		// heldAddr's mail, once released from Postfix's hold queue, lands
		// in the same mailbox.
		for _, addr := range []string{inboxAddr, heldAddr} {
			users += fmt.Sprintf("%s:{PLAIN}%s:%s:%s::%s::\n", addr, inboxPassword, nobody.Uid, nobody.Gid,
				filepath.Join(p.dir, "vmail", "inbox"))
		}
	}
	write(t, filepath.Join(d, "users"), users)
	write(t, filepath.Join(d, "dovecot.conf"), fmt.Sprintf(`# private SASL service of smtp_exporter's integration tests
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
disable_plaintext_auth = no
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/users
}
service auth {
  unix_listener %[1]s/auth/auth {
    mode = 0666
  }
}
`, d)+p.dovecotIMAP()+p.dovecotOAuth(t))
	// Dovecot's daemons inherit stdout and stderr: a pipe there would never
	// close, so its start-up errors go to a file.
	out, err := os.Create(filepath.Join(d, "start.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("/usr/sbin/dovecot", "-c", filepath.Join(d, "dovecot.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		startLog, _ := os.ReadFile(filepath.Join(d, "start.log"))
		log, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
		t.Fatalf("dovecot: %v\n%s%s", err, startLog, log)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(d, "auth", "auth")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
			t.Fatalf("dovecot's auth socket did not appear:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dovecotIMAP is the part of the Dovecot config that takes inboxAddr's mail
// over LMTP (a socket for Postfix) and serves it over IMAP on loopback, with
// STARTTLS on one listener and implicit TLS on the other. Empty without IMAP.
func (p *postfix) dovecotIMAP() string {
	if !p.imap {
		return ""
	}
	_, plainPort, _ := net.SplitHostPort(p.imapPlain)
	_, tlsPort, _ := net.SplitHostPort(p.imapImplicit)
	return fmt.Sprintf(`# IMAP and LMTP for the delivery check
protocols = imap lmtp
ssl = yes
ssl_cert = <%[1]s/tls/cert.pem
ssl_key = <%[1]s/tls/key.pem
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/dovecot/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]s
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[3]s
    ssl = yes
  }
}
service lmtp {
  unix_listener %[1]s/dovecot/lmtp {
    mode = 0666
  }
}
`, p.dir, plainPort, tlsPort)
}

// stopDovecot ends the private Dovecot and waits for it.
func (p *postfix) stopDovecot() {
	pidFile := filepath.Join(p.dir, "dovecot", "run", "master.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return
	}
	if proc, err := os.FindProcess(pid); err == nil {
		proc.Signal(os.Interrupt)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, u *user.User) {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dovecotOAuth is the part of the Dovecot config that validates XOAUTH2
// and OAUTHBEARER tokens: an oauth2 passdb checking the JWTs locally
// (introspection_mode = local) with the HS256 key from a dictionary of
// files. The key of a token without azp and kid is looked up at
// shared/default/HS256/default, base64; the token's sub must be the user
// name. Empty without oauthKey.
func (p *postfix) dovecotOAuth(t *testing.T) string {
	if p.oauthKey == nil {
		return ""
	}
	d := filepath.Join(p.dir, "dovecot")
	keyDir := filepath.Join(d, "keys", "default", "HS256")
	if err := os.MkdirAll(keyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(keyDir, "default"), base64.StdEncoding.EncodeToString(p.oauthKey))
	write(t, filepath.Join(d, "oauth2.conf"), fmt.Sprintf(`introspection_mode = local
local_validation_key_dict = fs:posix:prefix=%s/keys/
username_attribute = sub
`, d))
	return fmt.Sprintf(`# OAuth 2.0 bearer tokens, validated locally; a refusal says why in
# the log the test shows when it fails
auth_verbose = yes
auth_debug = yes
auth_mechanisms = plain login cram-md5 xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %s/oauth2.conf
}
`, d)
}
