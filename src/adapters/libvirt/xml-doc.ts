import { XMLParser } from 'fast-xml-parser';

/** Elements that may repeat: always arrays, so one and many read the same way. */
const REPEATED = new Set(['disk', 'graphics', 'listen', 'hostdev', 'interface', 'filesystem', 'serial', 'tpm', 'host']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => REPEATED.has(name),
});

export type XmlNode = Record<string, unknown>;

/** The <domain> element of a libvirt domain XML, parsed once for every reader of it. */
export function parseDomainElement(xml: string): XmlNode {
  const dom = (parser.parse(xml) as XmlNode).domain as XmlNode | undefined;
  if (!dom) throw new Error('not a libvirt domain XML document');
  return dom;
}

export function attr(n: unknown, name: string): string | null {
  if (typeof n !== 'object' || n === null) return null;
  const v = (n as XmlNode)[`@${name}`];
  return v === undefined ? null : String(v);
}
