package smtp

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ehlo sends EHLO, falling back to HELO when EHLO is refused with 500, 501,
// 502 or 550 (RFC 5321 section 3.2), and records the advertised extensions.
func (p *prober) ehlo() (bool, *Error) {
	r, err := p.cmd(PhaseEHLO, "EHLO "+p.opts.HeloName, "")
	if err != nil {
		return false, err
	}
	switch r.Code {
	case 500, 501, 502, 550:
		p.note("EHLO refused with %d: falling back to HELO", r.Code)
		p.res.Extensions = nil
		if r, err = p.cmd(PhaseEHLO, "HELO "+p.opts.HeloName, ""); err != nil {
			return false, err
		}
		return p.check(PhaseEHLO, r, 2)
	}
	done, cerr := p.check(PhaseEHLO, r, 2)
	if cerr == nil && r.Class() == 2 {
		p.res.Extensions = p.ehloExt.m
		if p.res.Extensions == nil {
			p.res.Extensions = map[string]string{}
		}
	}
	return done, cerr
}

// EHLO keywords kept per reply, and the bytes of parameters kept per keyword:
// every line is parsed while it is read, but a server advertising thousands
// of keywords costs no more than this.
const (
	maxExtensions      = 64
	maxExtensionParam  = 256
	maxExtensionParams = 2 << 10 // parameters of all keywords; past it, keywords are kept without
)

// extensionSet collects the EHLO keywords of every line after the first.
// Keywords that are not valid per RFC 5321 (letters, digits and '-') are
// ignored, so a hostile server cannot inject arbitrary label values.
// "AUTH=PLAIN LOGIN" (an old form) is read as AUTH.
type extensionSet struct {
	m      map[string]string
	params int // bytes of parameters kept
}

func (e *extensionSet) add(line string) {
	kw, params, _ := strings.Cut(line, " ")
	if k, v, ok := strings.Cut(kw, "="); ok && strings.EqualFold(k, "AUTH") {
		kw, params = k, strings.TrimSpace(v+" "+params)
	}
	if !validKeyword(kw) {
		return
	}
	kw = strings.ToUpper(kw)
	if e.m == nil {
		e.m = make(map[string]string)
	}
	old, dup := e.m[kw]
	if !dup && len(e.m) >= maxExtensions {
		return
	}
	if dup && params != "" && old != "" {
		params = old + " " + params
	}
	params = cutUTF8(strings.TrimSpace(params), maxExtensionParam)
	if e.params+len(params)-len(old) > maxExtensionParams {
		params = old
	}
	e.params += len(params) - len(old)
	// Clones: a substring would keep the whole line (up to 4 KiB) alive.
	e.m[strings.Clone(kw)] = strings.Clone(params)
}

func validKeyword(kw string) bool {
	if kw == "" || len(kw) > 64 || kw[0] == '-' {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// startTLS upgrades the connection and says EHLO again.
func (p *prober) startTLS() (bool, *Error) {
	if _, ok := p.res.Extensions["STARTTLS"]; !ok {
		if p.tlsCheck != nil && p.tlsCheck.NoSTARTTLS != nil {
			if failure := p.tlsCheck.NoSTARTTLS(); failure != nil {
				p.hooked = true
				return false, failure
			}
		}
		return false, &Error{Phase: PhaseStartTLS, Reason: ReasonUnsupported, Err: errNotOffered("STARTTLS")}
	}
	t := time.Now()
	r, err := p.cmd(PhaseStartTLS, "STARTTLS", "")
	if err != nil {
		return false, err
	}
	if done, err := p.check(PhaseStartTLS, r, 2); done || err != nil {
		return done, err
	}
	// Anything already buffered was sent before the handshake and must not be
	// read as if it came over TLS (the STARTTLS injection attack, CVE-2011-0411).
	if p.r.Buffered() > 0 {
		return false, &Error{Phase: PhaseStartTLS, Reason: ReasonProtocol, Reply: r,
			Err: protocolErrorf("server sent %d bytes after its STARTTLS reply, before the handshake", p.r.Buffered())}
	}
	herr := p.handshake(PhaseStartTLS)
	// The handshake belongs to the starttls phase's duration.
	p.res.Phases[len(p.res.Phases)-1].Duration = time.Since(t)
	if herr != nil {
		if p.tls {
			// The caller's check refused a complete handshake (a DANE
			// mismatch): the polite QUIT goes over TLS.
			p.r.Reset(p.conn)
		}
		return false, herr
	}
	// RFC 3207 section 4.2: forget everything learned before TLS; only the
	// EHLO inside TLS says what the server offers.
	p.res.Extensions = nil
	p.r.Reset(p.conn)
	return p.ehlo()
}

func errNotOffered(ext string) error {
	return fmt.Errorf("the server does not advertise %s", ext)
}

// transaction runs MAIL FROM, RCPT TO for each recipient and, when asked,
// DATA with the test message.
func (p *prober) transaction() (bool, *Error) {
	r, err := p.cmd(PhaseMail, "MAIL FROM:"+angle(p.opts.MailFrom), "")
	if err != nil {
		return false, err
	}
	if r.Class() == 2 {
		p.mailOpen = true
	}
	if done, err := p.check(PhaseMail, r, 2); done || err != nil {
		return done, err
	}
	var done bool
	for _, rcpt := range p.opts.RcptTo {
		r, err := p.cmd(PhaseRcpt, "RCPT TO:"+angle(rcpt), "")
		if err != nil {
			return false, err
		}
		var cerr *Error
		if done, cerr = p.check(PhaseRcpt, r, 2); cerr != nil {
			return false, cerr
		}
	}
	if done || !p.opts.SendData {
		return done, nil
	}
	r, err = p.cmd(PhaseData, "DATA", "")
	if err != nil {
		return false, err
	}
	if done, err := p.check(PhaseData, r, 3); done || err != nil {
		return done, err
	}
	return p.message()
}

func angle(addr string) string {
	if addr == "<>" {
		return addr
	}
	return "<" + addr + ">"
}

// message sends the test message and its final ".", and reads the reply.
func (p *prober) message() (bool, *Error) {
	t := time.Now()
	if err := p.unsolicited(); err != nil {
		return false, err
	}
	msg := p.testMessage()
	for _, line := range strings.Split(strings.TrimSuffix(msg, "\r\n"), "\r\n") {
		p.emit(Client, line)
	}
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseMessage, Duration: time.Since(t)})
		return false, p.ioError(PhaseMessage, err)
	}
	r, err := p.readReply(PhaseMessage, t)
	if err != nil {
		return false, err
	}
	if r.Class() == 2 {
		p.mailOpen = false
		p.res.AcceptedAt = time.Now()
	}
	return p.check(PhaseMessage, r, 2)
}

// testMessage builds a small RFC 5322 message with a unique Message-ID and a
// Date, ending with the "." line. No line starts with a dot, so no
// dot-stuffing is needed.
func (p *prober) testMessage() string {
	var id [12]byte
	rand.Read(id[:])
	now := time.Now()
	p.res.MessageID = fmt.Sprintf("<%d.%s@%s>", now.Unix(), hex.EncodeToString(id[:]), strings.Trim(p.opts.HeloName, "[]"))
	from := p.opts.MailFrom
	if from == "<>" {
		from = "MAILER-DAEMON@" + p.opts.HeloName
	}
	var b strings.Builder
	b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("From: <" + from + ">\r\n")
	b.WriteString("To: <" + strings.Join(p.opts.RcptTo, ">, <") + ">\r\n")
	b.WriteString("Subject: smtp_exporter probe " + now.UTC().Format(time.RFC3339) + "\r\n")
	b.WriteString("Message-ID: " + p.res.MessageID + "\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n")
	b.WriteString("X-Mailer: smtp_exporter\r\n")
	if p.opts.MarkDeadline {
		if d, ok := p.ctx.Deadline(); ok {
			b.WriteString("X-Smtp-Exporter-Deadline: " + strconv.FormatInt(d.Unix()+1, 10) + "\r\n")
		}
	}
	b.WriteString("\r\n")
	b.WriteString("This message was sent by smtp_exporter to check that this server accepts mail.\r\n")
	b.WriteString("It needs no action.\r\n")
	b.WriteString(".\r\n")
	return b.String()
}
