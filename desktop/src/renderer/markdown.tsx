// A small Markdown renderer that builds React elements directly, so model output can never
// become HTML: no dangerouslySetInnerHTML, no raw HTML passthrough, and links are shown as text
// with their address (the window may not navigate anywhere, and a model can invent any URL).
// Covers what a chat reply uses: paragraphs, headings, lists, quotes, code blocks, emphasis,
// inline code. Anything else is shown as the text it is.
import type { ReactNode } from 'react';

type Block =
  | { kind: 'heading'; level: 1 | 2 | 3; text: string }
  | { kind: 'paragraph'; text: string }
  | { kind: 'code'; lang: string; text: string }
  | { kind: 'list'; ordered: boolean; items: string[] }
  | { kind: 'quote'; text: string };

/** Splits source into blocks; a code fence left open (still streaming) runs to the end. */
export function parseBlocks(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const fence = /^\s*```\s*([\w+-]*)\s*$/.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i]!)) body.push(lines[i++]!);
      i++;
      blocks.push({ kind: 'code', lang: fence[1] ?? '', text: body.join('\n') });
      continue;
    }
    if (!line.trim()) {
      i++;
      continue;
    }
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    if (heading) {
      blocks.push({
        kind: 'heading',
        level: heading[1]!.length as 1 | 2 | 3,
        text: heading[2]!,
      });
      i++;
      continue;
    }
    const bullet = /^\s*([-*+]|\d{1,9}[.)])\s+/;
    const first = bullet.exec(line);
    if (first) {
      const ordered = /\d/.test(first[1]!);
      const items: string[] = [];
      while (i < lines.length) {
        const m = bullet.exec(lines[i]!);
        if (m && /\d/.test(m[1]!) === ordered) items.push(lines[i++]!.slice(m[0].length));
        else if (items.length && /^\s{2,}\S/.test(lines[i]!))
          items[items.length - 1] += ' ' + lines[i++]!.trim();
        else break;
      }
      blocks.push({ kind: 'list', ordered, items });
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && /^\s*>/.test(lines[i]!))
        quoted.push(lines[i++]!.replace(/^\s*>\s?/, ''));
      blocks.push({ kind: 'quote', text: quoted.join('\n') });
      continue;
    }
    const para: string[] = [];
    while (
      i < lines.length &&
      lines[i]!.trim() &&
      !/^\s*```/.test(lines[i]!) &&
      !/^#{1,3}\s/.test(lines[i]!) &&
      !/^\s*>/.test(lines[i]!) &&
      !(para.length === 0 && bullet.test(lines[i]!))
    ) {
      para.push(lines[i++]!);
    }
    blocks.push({ kind: 'paragraph', text: para.join('\n') });
  }
  return blocks;
}

const INLINE =
  /(`[^`\n]+`)|(\*\*[^*\n]+\*\*|__[^_\n]+__)|(\*[^*\s][^*\n]*\*|_[^_\s][^_\n]*_)|(\[[^\]\n]+\]\([^)\s]+\))/;

/** Inline spans: code, strong, emphasis, links (as text). Everything else stays literal text. */
export function renderInline(text: string, keyPrefix = 'i'): ReactNode[] {
  const out: ReactNode[] = [];
  let rest = text;
  let n = 0;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) {
      out.push(...withBreaks(rest, `${keyPrefix}-${n}`));
      break;
    }
    if (m.index > 0) out.push(...withBreaks(rest.slice(0, m.index), `${keyPrefix}-${n}t`));
    const token = m[0];
    const key = `${keyPrefix}-${n++}`;
    if (m[1]) out.push(<code key={key}>{token.slice(1, -1)}</code>);
    else if (m[2]) out.push(<strong key={key}>{renderInline(token.slice(2, -2), key)}</strong>);
    else if (m[3]) out.push(<em key={key}>{renderInline(token.slice(1, -1), key)}</em>);
    else {
      const link = /^\[([^\]]+)\]\(([^)]+)\)$/.exec(token)!;
      out.push(
        <span key={key} className="md-link" title="Links are not opened from chat">
          {link[1]} <span className="md-url">({link[2]})</span>
        </span>,
      );
    }
    rest = rest.slice(m.index + token.length);
  }
  return out;
}

function withBreaks(text: string, key: string): ReactNode[] {
  const parts = text.split('\n');
  return parts.flatMap((part, i) => (i === 0 ? [part] : [<br key={`${key}-${i}`} />, part]));
}

export function Markdown(props: { source: string }) {
  return (
    <div className="markdown">
      {parseBlocks(props.source).map((block, i) => {
        const key = `b${i}`;
        switch (block.kind) {
          case 'heading': {
            const Tag = (['h3', 'h4', 'h5'] as const)[block.level - 1]!;
            return <Tag key={key}>{renderInline(block.text, key)}</Tag>;
          }
          case 'code':
            return (
              <pre key={key} data-lang={block.lang || undefined}>
                <code>{block.text}</code>
              </pre>
            );
          case 'list': {
            const items = block.items.map((item, j) => (
              <li key={j}>{renderInline(item, `${key}-${j}`)}</li>
            ));
            return block.ordered ? <ol key={key}>{items}</ol> : <ul key={key}>{items}</ul>;
          }
          case 'quote':
            return <blockquote key={key}>{renderInline(block.text, key)}</blockquote>;
          default:
            return <p key={key}>{renderInline(block.text, key)}</p>;
        }
      })}
    </div>
  );
}
