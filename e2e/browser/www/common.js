// Helpers shared by the test pages (a plain script: window.E2E).
'use strict';
window.E2E = {
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),

  redact: (s) => String(s).replace(/(token=|Bearer )[A-Za-z0-9_\-.%]+/g, '$1REDACTED'),

  // state is what the checks judge playback by.
  state(video) {
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : {};
    return {
      currentTime: video.currentTime,
      frames: q.totalVideoFrames ?? 0,
      readyState: video.readyState,
      paused: video.paused,
      mediaError: video.error ? { code: video.error.code, message: video.error.message } : null,
    };
  },

  // waitFor calls poll every 100 ms until it returns a truthy value (which
  // it returns) or the deadline passes (an Error naming what). poll may
  // throw to fail at once.
  async waitFor(deadline, what, poll) {
    for (;;) {
      const v = await poll();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await E2E.sleep(100);
    }
  },

  // playing waits until playback has advanced (currentTime > minTime s,
  // 1 by default, with decoded frames); fatal() returns a reason to stop
  // early.
  async playing(video, deadline, fatal, minTime = 1) {
    return E2E.waitFor(deadline, `playback to pass ${minTime} s`, () => {
      if (video.error) throw new Error(`media error ${video.error.code}: ${video.error.message}`);
      const why = fatal();
      if (why) throw new Error(why);
      const s = E2E.state(video);
      return s.currentTime > minTime && s.frames > 0 ? s : null;
    });
  },

  // refused waits until failure() returns the player's refusal (which it
  // returns), failing at once if playback advances instead.
  async refused(video, deadline, what, failure) {
    return E2E.waitFor(deadline, what, () => {
      const f = failure();
      if (f) return f;
      const s = E2E.state(video);
      if (s.frames > 0 && s.currentTime > 0.5) throw new Error(`playback advanced with a bad token: ${E2E.describe(s)}`);
      return null;
    });
  },

  // stalled checks, after a refusal, that playback does not advance: no
  // decoded frame, and currentTime (a player may seek to the first
  // sample's time) does not move during ms.
  async stalled(video, ms) {
    const before = E2E.state(video);
    await E2E.sleep(ms);
    const s = E2E.state(video);
    if (s.frames > 0 || s.currentTime - before.currentTime > 0.05 || s.currentTime > 0.5) {
      throw new Error(`playback advanced after the refusal: currentTime ${before.currentTime.toFixed(2)} -> ${s.currentTime.toFixed(2)} s, ${s.frames} frames`);
    }
    return s;
  },

  describe: (s) => `currentTime ${s.currentTime.toFixed(2)} s, ${s.frames} frames`,

  b64url(buf) {
    const b = new Uint8Array(buf);
    let s = '';
    for (const c of b) s += String.fromCharCode(c);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
};
