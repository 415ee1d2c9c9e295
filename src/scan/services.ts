// Service names for well-known ports (the IANA registry's names, shortened where everyone does),
// and the "common ports" a scan without -p covers: a hand-kept list of services that are often
// found listening, roughly most likely first. Names only label a port; a scan never assumes
// what really listens there (--banner asks).

const TCP_NAMES: Readonly<Record<number, string>> = {
  7: 'echo', 9: 'discard', 13: 'daytime', 21: 'ftp', 22: 'ssh', 23: 'telnet', 25: 'smtp', 37: 'time',
  43: 'whois', 53: 'domain', 79: 'finger', 80: 'http', 81: 'http-alt', 88: 'kerberos', 110: 'pop3',
  111: 'rpcbind', 113: 'ident', 119: 'nntp', 135: 'msrpc', 139: 'netbios-ssn', 143: 'imap', 179: 'bgp',
  389: 'ldap', 443: 'https', 445: 'microsoft-ds', 465: 'smtps', 513: 'login', 514: 'shell',
  515: 'printer', 543: 'klogin', 544: 'kshell', 548: 'afp', 554: 'rtsp', 587: 'submission', 631: 'ipp',
  636: 'ldaps', 873: 'rsync', 853: 'domain-s', 990: 'ftps', 993: 'imaps', 995: 'pop3s', 1080: 'socks',
  1194: 'openvpn', 1433: 'ms-sql-s', 1521: 'oracle', 1723: 'pptp', 1883: 'mqtt', 2049: 'nfs',
  2181: 'zookeeper', 2375: 'docker', 2376: 'docker-tls', 3000: 'http-dev', 3128: 'squid-http',
  3306: 'mysql', 3389: 'ms-wbt-server', 4369: 'epmd', 5000: 'upnp', 5060: 'sip', 5222: 'xmpp-client',
  5432: 'postgresql', 5601: 'kibana', 5672: 'amqp', 5900: 'vnc', 5984: 'couchdb', 6379: 'redis',
  6443: 'kubernetes', 6667: 'irc', 7001: 'afs3-callback', 8000: 'http-alt', 8008: 'http', 8080: 'http-proxy',
  8081: 'http-alt', 8443: 'https-alt', 8888: 'sun-answerbook', 9000: 'cslistener', 9042: 'cassandra',
  9090: 'zeus-admin', 9092: 'kafka', 9100: 'jetdirect', 9200: 'elasticsearch', 9418: 'git',
  9443: 'https-alt', 10000: 'snet-sensor-mgmt', 11211: 'memcache', 27017: 'mongodb',
};

const UDP_NAMES: Readonly<Record<number, string>> = {
  7: 'echo', 53: 'domain', 67: 'dhcps', 68: 'dhcpc', 69: 'tftp', 111: 'rpcbind', 123: 'ntp',
  137: 'netbios-ns', 138: 'netbios-dgm', 161: 'snmp', 162: 'snmptrap', 500: 'isakmp', 514: 'syslog',
  520: 'route', 623: 'asf-rmcp', 1194: 'openvpn', 1434: 'ms-sql-m', 1900: 'upnp', 4500: 'nat-t-ike',
  5353: 'mdns', 5060: 'sip', 11211: 'memcache', 51820: 'wireguard',
};

/** The service usually found on a port, or `unknown`. */
export function serviceName(protocol: 'tcp' | 'udp', port: number): string {
  return (protocol === 'tcp' ? TCP_NAMES : UDP_NAMES)[port] ?? 'unknown';
}

/** TCP ports scanned when no -p is given, most often open first (`--top-ports N` takes a prefix). */
export const COMMON_TCP_PORTS: readonly number[] = [
  80, 443, 22, 21, 25, 23, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 111, 995, 993, 587, 5900,
  8443, 8000, 465, 8888, 5432, 6379, 3000, 8081, 1723, 179, 554, 548, 113, 81, 10000, 514, 5060, 2049,
  1433, 1521, 631, 515, 8008, 5000, 9000, 9090, 9100, 9200, 27017, 11211, 389, 636, 88, 79, 119, 873,
  990, 1080, 1194, 1883, 2181, 2375, 2376, 3128, 4369, 5222, 5601, 5672, 5984, 6443, 6667, 7001, 9042,
  9092, 9418, 9443, 513, 543, 544, 853, 43, 37, 13, 9, 7, 8009, 8010, 8181, 8280, 8880, 7070, 5800,
  5901, 6000, 6001, 49152, 49153, 32768,
];

/** UDP ports scanned with --udp when no -p is given. */
export const COMMON_UDP_PORTS: readonly number[] = [
  53, 123, 161, 137, 67, 68, 69, 500, 514, 520, 1900, 4500, 5353, 138, 162, 111, 623, 1434, 5060, 11211,
];
