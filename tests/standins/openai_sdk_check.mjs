// openai_sdk_check.mjs: drives the official `openai` npm SDK (v6) against the LLM
// stand-in and asserts that the SDK rebuilds what the stand-in meant to send.
// Run by test_llm_standin.py: node openai_sdk_check.mjs http://127.0.0.1:PORT
// Prints one line per check; exits non-zero on the first failure.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const base = process.argv[2];
if (!base) {
    console.error('usage: node openai_sdk_check.mjs BASE_URL');
    process.exit(2);
}
const KEY = 'standin-key';
const client = new OpenAI({ apiKey: KEY, baseURL: base + '/v1', maxRetries: 0, timeout: 10000 });
const words = (s) => s.split(/\s+/).filter(Boolean).length;

async function requests() {
    const res = await fetch(base + '/_standin/requests?wait=5');
    return (await res.json()).requests;
}

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('text stream with include_usage rebuilds content and usage', async () => {
    const prompt = 'hello from the official sdk';
    const stream = client.chat.completions.stream({
        model: 'gpt-4o-mini',
        messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: prompt }],
        stream_options: { include_usage: true },
    });
    let deltas = 0;
    stream.on('content', () => { deltas += 1; });
    const done = await stream.finalChatCompletion();
    const expected = 'Echo: ' + prompt;
    assert.equal(done.object, 'chat.completion');
    assert.equal(done.choices.length, 1);
    assert.equal(done.choices[0].message.role, 'assistant');
    assert.equal(done.choices[0].message.content, expected);
    assert.equal(done.choices[0].finish_reason, 'stop');
    assert.equal(deltas, words(expected));
    const promptTokens = words('be brief') + words(prompt);
    assert.equal(done.usage.prompt_tokens, promptTokens);
    assert.equal(done.usage.completion_tokens, words(expected));
    assert.equal(done.usage.total_tokens, promptTokens + words(expected));
});

check('parallel tool calls rebuild names, ids and JSON arguments', async () => {
    const args1 = { city: 'Paris', units: 'metric', days: [1, 2, 3] };
    const args2 = { query: 'ünïcode "quoted" text', limit: 5 };
    const stream = client.chat.completions.stream({
        model: 'gpt-4o-mini',
        messages: [{
            role: 'user',
            content: `plan [[with_text]] [[tool:get_weather ${JSON.stringify(args1)}]] ` +
                `[[tool:search ${JSON.stringify(args2)}]]`,
        }],
        tools: [
            { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } },
            { type: 'function', function: { name: 'search', parameters: { type: 'object' } } },
        ],
        stream_options: { include_usage: true },
    });
    const doneArgs = [];
    stream.on('tool_calls.function.arguments.done', (e) => doneArgs.push(e.name));
    const done = await stream.finalChatCompletion();
    const msg = done.choices[0].message;
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.content, 'Echo: plan');
    assert.equal(msg.tool_calls.length, 2);
    assert.equal(msg.tool_calls[0].type, 'function');
    assert.match(msg.tool_calls[0].id, /^call_[A-Za-z0-9]{24}$/);
    assert.notEqual(msg.tool_calls[0].id, msg.tool_calls[1].id);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), args1);
    assert.equal(msg.tool_calls[1].function.name, 'search');
    assert.deepEqual(JSON.parse(msg.tool_calls[1].function.arguments), args2);
    assert.deepEqual(doneArgs, ['get_weather', 'search']);
    assert.ok(done.usage.completion_tokens > 2);
});

check('tool result turn ends the loop with text', async () => {
    const done = await client.chat.completions.stream({
        model: 'gpt-4o-mini',
        messages: [
            { role: 'user', content: 'weather? [[tool:get_weather {"city":"Paris"}]]' },
            { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
            { role: 'tool', tool_call_id: 'call_1', content: '18C and sunny' },
        ],
    }).finalChatCompletion();
    assert.equal(done.choices[0].finish_reason, 'stop');
    assert.equal(done.choices[0].message.content, 'Echo: 18C and sunny');
    assert.equal(done.choices[0].message.tool_calls, undefined);
});

check('max_tokens gives finish_reason length', async () => {
    const done = await client.chat.completions.stream({
        model: 'gpt-4o-mini', max_tokens: 3,
        messages: [{ role: 'user', content: 'one two three four five' }],
    }).finalChatCompletion();
    assert.equal(done.choices[0].finish_reason, 'length');
    assert.equal(done.choices[0].message.content, 'Echo: one two');
});

check('non-stream create', async () => {
    const done = await client.chat.completions.create({
        model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'plain call' }],
    });
    assert.equal(done.choices[0].message.content, 'Echo: plain call');
    assert.equal(done.usage.completion_tokens, 3);
});

check('wrong key raises AuthenticationError with invalid_api_key', async () => {
    const bad = new OpenAI({ apiKey: 'sk-wrong-key-123', baseURL: base + '/v1', maxRetries: 0 });
    await assert.rejects(
        bad.chat.completions.create({ model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 &&
            e.code === 'invalid_api_key' && e.type === 'invalid_request_error');
});

check('429 then success: the SDK retries on retry-after-ms', async () => {
    const retrying = new OpenAI({ apiKey: KEY, baseURL: base + '/v1', maxRetries: 3 });
    const content = 'retry me [[fail_first:2 status:429 retry_after_ms:10 key:sdk-retry]]';
    const done = await retrying.chat.completions.stream({
        model: 'gpt-4o-mini', messages: [{ role: 'user', content }],
    }).finalChatCompletion();
    assert.equal(done.choices[0].message.content, 'Echo: retry me');
    const mine = (await requests()).filter((r) => r.markers.key === 'sdk-retry');
    assert.deepEqual(mine.map((r) => r.status), [429, 429, 200]);
    assert.deepEqual(mine.map((r) => r.attempt), [1, 2, 3]);
    assert.ok(mine.every((r) => r.headers['x-stainless-retry-count'] !== undefined));
});

check('insufficient_quota 429 is a RateLimitError with its own code', async () => {
    await assert.rejects(
        client.chat.completions.create({ model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: 'x [[status:429 quota]]' }] }),
        (e) => e instanceof OpenAI.RateLimitError && e.code === 'insufficient_quota');
});

check('mid-stream error event raises APIError', async () => {
    const stream = client.chat.completions.stream({
        model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a b c d [[error_after:2]]' }],
    });
    await assert.rejects(stream.finalChatCompletion(),
        (e) => e instanceof OpenAI.APIError && /server had an error/.test(e.message));
});

check('stream cut before [DONE] is an error, not a completion', async () => {
    const stream = client.chat.completions.stream({
        model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a b c d [[cut_after:2]]' }],
    });
    await assert.rejects(stream.finalChatCompletion());
});

check('abort reaches the upstream as a disconnect', async () => {
    const stream = client.chat.completions.stream({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'slow [[tokens:200 delay_ms:20 key:sdk-abort]]' }],
    });
    let seen = 0;
    stream.on('content', () => {
        seen += 1;
        if (seen === 3) stream.abort();
    });
    await stream.done().catch(() => {});
    const rec = (await requests()).find((r) => r.markers.key === 'sdk-abort');
    assert.equal(rec.disconnected, true);
    assert.equal(rec.completed, false);
    assert.ok(rec.tokens_sent >= 3 && rec.tokens_sent < 50, 'tokens_sent ' + rec.tokens_sent);
});

check('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('gpt-4o-mini'));
});

let failed = 0;
for (const [name, fn] of checks) {
    try {
        await fn();
        console.log('ok   ' + name);
    } catch (e) {
        failed += 1;
        const trace = String((e && e.stack) || e).split('\n').join('\n     ');
        console.log('FAIL ' + name + '\n     ' + trace);
    }
}
console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
