package inventory

import "strings"

// keywords are the ssh_config(5) client keywords of OpenSSH 9.x, plus the
// deprecated spellings OpenSSH still accepts. An inventory may use only
// these, so that `ssh -F INVENTORY NAME` reads it the way banpush does.
// The map goes from the lower-case form to the canonical spelling.
var keywords = canonical(
	"AddKeysToAgent", "AddressFamily", "BatchMode", "BindAddress", "BindInterface",
	"CanonicalDomains", "CanonicalizeFallbackLocal", "CanonicalizeHostname",
	"CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs", "CASignatureAlgorithms",
	"CertificateFile", "ChallengeResponseAuthentication", "CheckHostIP", "Ciphers",
	"ClearAllForwardings", "Compression", "ConnectionAttempts", "ConnectTimeout",
	"ControlMaster", "ControlPath", "ControlPersist", "DynamicForward",
	"EnableEscapeCommandline", "EnableSSHKeysign", "EscapeChar", "ExitOnForwardFailure",
	"FingerprintHash", "ForkAfterAuthentication", "ForwardAgent", "ForwardX11",
	"ForwardX11Timeout", "ForwardX11Trusted", "GatewayPorts", "GlobalKnownHostsFile",
	"GSSAPIAuthentication", "GSSAPIClientIdentity", "GSSAPIDelegateCredentials",
	"GSSAPIKeyExchange", "GSSAPIRenewalForcesRekey", "GSSAPIServerIdentity",
	"GSSAPITrustDns", "GSSAPIKexAlgorithms", "HashKnownHosts", "Host",
	"HostbasedAcceptedAlgorithms", "HostbasedAuthentication", "HostbasedKeyTypes",
	"HostKeyAlgorithms", "HostKeyAlias", "HostName", "IdentitiesOnly", "IdentityAgent",
	"IdentityFile", "IgnoreUnknown", "Include", "IPQoS", "KbdInteractiveAuthentication",
	"KbdInteractiveDevices", "KexAlgorithms", "KnownHostsCommand", "LocalCommand",
	"LocalForward", "LogLevel", "LogVerbose", "MACs", "Match",
	"NoHostAuthenticationForLocalhost", "NumberOfPasswordPrompts",
	"PasswordAuthentication", "PermitLocalCommand", "PermitRemoteOpen",
	"PKCS11Provider", "Port", "PreferredAuthentications", "ProxyCommand", "ProxyJump",
	"ProxyUseFdpass", "PubkeyAcceptedAlgorithms", "PubkeyAcceptedKeyTypes",
	"PubkeyAuthentication", "RekeyLimit", "RemoteCommand", "RemoteForward", "RequestTTY",
	"RequiredRSASize", "RevokedHostKeys", "SecurityKeyProvider", "SendEnv",
	"ServerAliveCountMax", "ServerAliveInterval", "SessionType", "SetEnv", "StdinNull",
	"StreamLocalBindMask", "StreamLocalBindUnlink", "StrictHostKeyChecking",
	"SyslogFacility", "TCPKeepAlive", "Tunnel", "TunnelDevice", "UpdateHostKeys",
	"User", "UserKnownHostsFile", "VerifyHostKeyDNS", "VisualHostKey", "XAuthLocation",
)

// unsupported are keywords banpush parses but cannot honour when it
// connects: they would make banpush reach a peer differently from ssh.
// Resolve refuses them unless their value is "none".
var unsupported = map[string]bool{
	"KnownHostsCommand": true,
	"PKCS11Provider":    true,
	"ProxyCommand":      true,
	"ProxyJump":         true,
	"RemoteCommand":     true,
}

func canonical(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}
