package smtp

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The order in which "the best mechanism offered" is picked: inside TLS,
// PLAIN, then LOGIN, then CRAM-MD5 (deprecated, RFC 8314 section 5.3: it
// makes the server store the password in a reusable form); without TLS
// (AllowPlaintext), CRAM-MD5 first, as it does not send the password itself.
var (
	mechanismPreferenceTLS   = []string{"PLAIN", "LOGIN", "CRAM-MD5"}
	mechanismPreferenceClear = []string{"CRAM-MD5", "PLAIN", "LOGIN"}
)

// auth authenticates with the module's credentials. The credentials never
// reach the transcript or an error: the lines that carry them are shown as
// <redacted>, and every encoding of the password sent is registered as a
// secret, scrubbed from whatever the server echoes.
func (p *prober) auth() (bool, *Error) {
	a := p.opts.Auth
	params, ok := p.res.Extensions["AUTH"]
	if !ok {
		return false, &Error{Phase: PhaseAuth, Reason: ReasonUnsupported, Err: errNotOffered("AUTH")}
	}
	offered := strings.Fields(strings.ToUpper(params))
	mech := strings.ToUpper(a.Mechanism)
	if mech == "" {
		preference := mechanismPreferenceClear
		if p.tls {
			preference = mechanismPreferenceTLS
		}
		for _, m := range preference {
			if slices.Contains(offered, m) {
				mech = m
				break
			}
		}
		if mech == "" {
			return false, &Error{Phase: PhaseAuth, Reason: ReasonUnsupported,
				Err: fmt.Errorf("the server offers AUTH %s, none of PLAIN, LOGIN, CRAM-MD5", params)}
		}
	} else if !slices.Contains(offered, mech) {
		return false, &Error{Phase: PhaseAuth, Reason: ReasonUnsupported, Err: errNotOffered("AUTH " + mech)}
	}
	if !p.tls && !a.AllowPlaintext {
		return false, &Error{Phase: PhaseAuth, Reason: ReasonUnsupported,
			Err: errors.New("refusing to send credentials over a connection without TLS (allow_plaintext is off)")}
	}

	var r *Reply
	var err *Error
	switch mech {
	case "XOAUTH2", "OAUTHBEARER":
		return p.bearer(mech)
	case "PLAIN":
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + a.Username + "\x00" + p.password))
		p.secrets.add(resp)
		r, err = p.cmd(PhaseAuth, "AUTH PLAIN "+resp, "AUTH PLAIN "+redacted)
	case "LOGIN":
		r, err = p.cmd(PhaseAuth, "AUTH LOGIN", "")
		for _, secret := range []string{a.Username, p.password} {
			if err != nil || r.Code != 334 {
				break
			}
			r, err = p.cmd(PhaseAuth, base64.StdEncoding.EncodeToString([]byte(secret)), redacted)
		}
	case "CRAM-MD5":
		r, err = p.cmd(PhaseAuth, "AUTH CRAM-MD5", "")
		if err == nil && r.Code == 334 {
			challenge, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text()))
			if derr != nil {
				_, _ = p.cmd(PhaseAuth, "*", "") // cancel the exchange (RFC 4954)
				return false, &Error{Phase: PhaseAuth, Reason: ReasonProtocol, Reply: r,
					Err: protocolErrorf("CRAM-MD5 challenge is not base64")}
			}
			mac := hmac.New(md5.New, []byte(p.password))
			mac.Write(challenge)
			digest := hex.EncodeToString(mac.Sum(nil))
			resp := base64.StdEncoding.EncodeToString([]byte(a.Username + " " + digest))
			p.secrets.add(digest)
			p.secrets.add(resp)
			r, err = p.cmd(PhaseAuth, resp, redacted)
		}
	}
	if err != nil {
		return false, err
	}
	return p.check(PhaseAuth, r, 2)
}
