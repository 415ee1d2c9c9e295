import { bannerSummary } from './banner.ts';
import type { HostReport, PortReport, ScanSummary } from './run.ts';
import type { StateReason } from './states.ts';
import { VERSION } from '../version.ts';
import { sanitizeRemoteText } from './sanitize.ts';

// Three ways to print a scan, each written as hosts finish (a long scan shows results as it
// goes, and nothing is held back but the host being scanned): a table like nmap's
// `PORT STATE SERVICE`, one JSON document, and nmap's grepable format (-oG), one line per host.

export type OutputFormat = 'table' | 'json' | 'grepable';

export interface ScanHeader {
  protocol: 'tcp' | 'udp';
  hostsTotal: number;
  portCount: number;
  startedAt: Date;
  /** The command line, for the grepable format's first line. */
  commandLine: string;
  /** Only open ports are listed. */
  openOnly: boolean;
}

export interface ScanFormatter {
  start(header: ScanHeader): string;
  host(report: HostReport): string;
  end(summary: ScanSummary): string;
}

function hostLabel(report: HostReport): string {
  return report.name !== undefined ? `${report.name} (${report.address})` : report.address;
}

function reasonsText(reasons: Partial<Record<StateReason, number>>): string {
  return Object.entries(reasons)
    .map(([reason, n]) => `${n} ${reason}`)
    .join(', ');
}

function portDetail(p: PortReport): string {
  return p.protocol === 'udp' ? (p.reply ?? '') : bannerSummary(p.banner);
}

function shownPorts(report: HostReport, openOnly: boolean): PortReport[] {
  return openOnly ? report.ports.filter((p) => p.state === 'open') : report.ports;
}

function tableFormatter(): ScanFormatter {
  let header: ScanHeader;
  return {
    start(h) {
      header = h;
      const kind = h.protocol === 'tcp' ? 'TCP connect' : 'UDP';
      return `Switchyard ${VERSION} ${kind} scan of ${h.hostsTotal} host${h.hostsTotal === 1 ? '' : 's'}, ${h.portCount} port${h.portCount === 1 ? '' : 's'} each, at ${h.startedAt.toISOString()}\n`;
    },
    host(report) {
      const lines = ['', `Scan report for ${hostLabel(report)}`];
      const ports = shownPorts(report, header.openOnly);
      const total = Object.values(report.counts).reduce((a, b) => a + (b ?? 0), 0);
      for (const hidden of report.notShown) lines.push(`Not shown: ${hidden.count} ${hidden.state} ${header.protocol} ports (${reasonsText(hidden.reasons)})`);
      if (header.openOnly && ports.length < report.ports.length) lines.push(`Not shown: ${report.ports.length - ports.length} ports that are not open`);
      if (ports.length === 0) {
        lines.push(header.openOnly ? `No open ports among the ${total} scanned.` : `All ${total} scanned ports are in the states above.`);
        return `${lines.join('\n')}\n`;
      }
      const portCol = Math.max(4, ...ports.map((p) => `${p.port}/${p.protocol}`.length)) + 1;
      const stateCol = Math.max(5, ...ports.map((p) => p.state.length)) + 1;
      const serviceCol = Math.max(7, ...ports.map((p) => p.service.length)) + 1;
      const details = ports.map(portDetail);
      const withDetail = details.some((d) => d !== '');
      lines.push(`${'PORT'.padEnd(portCol)}${'STATE'.padEnd(stateCol)}${withDetail ? 'SERVICE'.padEnd(serviceCol) + (header.protocol === 'udp' ? 'REPLY' : 'BANNER') : 'SERVICE'}`);
      ports.forEach((p, i) => {
        const row = `${`${p.port}/${p.protocol}`.padEnd(portCol)}${p.state.padEnd(stateCol)}`;
        lines.push(withDetail ? `${row}${p.service.padEnd(serviceCol)}${details[i]}`.trimEnd() : `${row}${p.service}`);
      });
      return `${lines.join('\n')}\n`;
    },
    end(summary) {
      const seconds = (summary.elapsedMs / 1000).toFixed(2);
      const stopped = summary.interrupted ? ' (stopped before the end: hosts not finished are not listed)' : '';
      return `\nScanned ${summary.hostsDone} of ${summary.hostsTotal} host${summary.hostsTotal === 1 ? '' : 's'} in ${seconds} s${stopped}\n`;
    },
  };
}

function jsonFormatter(): ScanFormatter {
  let first = true;
  let openOnly = false;
  return {
    start(h) {
      openOnly = h.openOnly;
      const head = { scanner: 'switchyard', version: VERSION, protocol: h.protocol, startedAt: h.startedAt.toISOString(), hostsTotal: h.hostsTotal, portCount: h.portCount };
      return `${JSON.stringify(head).slice(0, -1)},"hosts":[\n`;
    },
    host(report) {
      const line = JSON.stringify({ ...report, ports: shownPorts(report, openOnly) });
      const out = `${first ? '' : ',\n'}${line}`;
      first = false;
      return out;
    },
    end(summary) {
      const tail = { hostsDone: summary.hostsDone, elapsedMs: Math.round(summary.elapsedMs), interrupted: summary.interrupted };
      return `${first ? '' : '\n'}],"summary":${JSON.stringify(tail)}}\n`;
    },
  };
}

/** A grepable field value: nmap's separators (/ , tab) cannot appear inside it. */
function grepableField(text: string): string {
  return text.replace(/\//g, '|').replace(/,/g, ';').replace(/\t/g, ' ');
}

function grepableFormatter(): ScanFormatter {
  let openOnly = false;
  return {
    start(h) {
      openOnly = h.openOnly;
      return `# Switchyard ${VERSION} scan initiated ${h.startedAt.toUTCString()} as: ${sanitizeRemoteText(h.commandLine, 2000)}\n`;
    },
    host(report) {
      const label = `Host: ${report.address} (${report.name ?? ''})`;
      const ports = shownPorts(report, openOnly).map((p) => `${p.port}/${p.state}/${p.protocol}//${grepableField(p.service)}//${grepableField(portDetail(p))}/`);
      const fields = [label];
      if (ports.length) fields.push(`Ports: ${ports.join(', ')}`);
      const ignored = report.notShown[0];
      if (ignored) fields.push(`Ignored State: ${ignored.state} (${ignored.count})`);
      return `${fields.join('\t')}\n`;
    },
    end(summary) {
      const ended = new Date(summary.startedAt.getTime() + summary.elapsedMs);
      return `# Switchyard done at ${ended.toUTCString()} -- ${summary.hostsDone} IP address${summary.hostsDone === 1 ? '' : 'es'} scanned in ${(summary.elapsedMs / 1000).toFixed(2)} seconds${summary.interrupted ? ' (stopped before the end)' : ''}\n`;
    },
  };
}

export function scanFormatter(format: OutputFormat): ScanFormatter {
  if (format === 'json') return jsonFormatter();
  if (format === 'grepable') return grepableFormatter();
  return tableFormatter();
}

/** One progress line for stderr. */
export function progressLine(p: { probesDone: number; probesTotal: number; hostsDone: number; hostsTotal: number; open: number; elapsedMs: number }): string {
  const pct = p.probesTotal ? Math.floor((p.probesDone / p.probesTotal) * 100) : 100;
  const rate = p.elapsedMs > 0 ? p.probesDone / (p.elapsedMs / 1000) : 0;
  const etaS = rate > 0 ? Math.ceil((p.probesTotal - p.probesDone) / rate) : undefined;
  return `scan: ${p.probesDone}/${p.probesTotal} probes (${pct}%), ${p.hostsDone}/${p.hostsTotal} hosts, ${p.open} open${etaS !== undefined ? `, about ${etaS} s left` : ''}`;
}
