// A model's chat template is not trusted: it renders under a budget (steps, time, range() length, value size), so
// one that runs away fails with ChatTemplateError at once; real templates render exactly as @huggingface/jinja's
// own Template.render renders them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Template } from '@huggingface/jinja';
import { CHATML_TEMPLATE, ChatTemplate, ChatTemplateError } from '../../src/generate/chat-template.js';

const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Bye' }];
const render = (source: string) => new ChatTemplate(source, '<s>', '</s>').render(messages);

test('templates within the budget render as Template.render does (ChatML, loops, range, strftime_now, namespace)', () => {
  const sources = [
    CHATML_TEMPLATE,
    "{{ bos_token }}{% for m in messages %}{% if loop.first and m['role'] == 'system' %}[SYS]{{ m['content'] }}{% else %}[{{ m['role'] | upper }}]{{ m['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}",
    "{% for i in range(2, 12, 3) %}{{ i }},{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}{{ strftime_now('%Y') }}",
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m['content'] | length %}{% endfor %}{{ ns.n }}{{ eos_token }}",
  ];
  for (const source of sources) {
    const expected = new Template(source).render({ messages, add_generation_prompt: true, bos_token: '<s>', eos_token: '</s>' });
    assert.equal(render(source), expected, source);
  }
  assert.throws(() => render("{{ raise_exception('no system role') }}"), /no system role/);
});

test('a template that runs away fails with ChatTemplateError naming the budget', () => {
  const runaways: [string, RegExp][] = [
    ['{% for i in range(3000000) %}x{% endfor %}', /range\(\) of 3000000 items is over the budget/],
    ['{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}', /ran past its budget/],
    ["{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}", /over the budget of 4000000/],
  ];
  for (const [source, reason] of runaways) {
    assert.throws(() => render(source), (e: unknown) => e instanceof ChatTemplateError && reason.test(e.message), source);
  }
});
