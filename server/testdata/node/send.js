// Sends events to the tally at TALLY_URL with the API key TALLY_KEY,
// through the unmodified Segment and PostHog Node libraries: every event
// twice with the same id (as a retry would), then exits 0 once both
// libraries have flushed. Run by server/node_sdk_test.go.
'use strict'
const { Analytics } = require('@segment/analytics-node')
const { PostHog } = require('posthog-node')

const host = process.env.TALLY_URL
const key = process.env.TALLY_KEY

async function segment () {
  const errors = []
  for (let round = 0; round < 2; round++) {
    const analytics = new Analytics({ writeKey: key, host, flushAt: 10, maxRetries: 2 })
    analytics.on('error', (err) => errors.push(err))
    analytics.track({ messageId: 'node-seg-track', userId: 'node-u1', event: 'Plan Upgraded', properties: { plan: 'pro' } })
    analytics.page({ messageId: 'node-seg-page', anonymousId: 'node-anon', name: 'Pricing' })
    analytics.identify({ messageId: 'node-seg-identify', userId: 'node-u1', traits: { email: 'u1@example.test' } })
    await analytics.closeAndFlush({ timeout: 10000 })
  }
  if (errors.length) throw new Error('segment: ' + errors.map(String).join('; '))
}

async function posthog () {
  for (let round = 0; round < 2; round++) {
    const client = new PostHog(key, { host, flushAt: 10, flushInterval: 0, fetchRetryCount: 2 })
    client.capture({ uuid: '0b6f5a4e-8a51-4f0e-9d0c-2a4f3c1e7b01', distinctId: 'node-d1', event: '$pageview', properties: { $current_url: 'https://example.test/' } })
    client.capture({ uuid: '0b6f5a4e-8a51-4f0e-9d0c-2a4f3c1e7b02', distinctId: 'node-d2', event: 'report exported', properties: { rows: 12 } })
    await client.shutdown(10000)
  }
}

segment().then(posthog).then(() => { console.log('sent') }, (err) => { console.error(err); process.exit(1) })
