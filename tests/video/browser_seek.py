"""One way for browser tests to seek a ``<video>`` and know which frame it then shows.

``seeked`` alone is not enough: it fires when the media pipeline has finished seeking, and under load
Chromium may hand the new frame to the compositor later, so a ``drawImage`` right after ``seeked``
drew the previous frame, or no frame at all (both seen on a loaded CI machine). ``SHOW_AT`` also waits
for ``requestVideoFrameCallback``, which fires once the sought frame is presented (it does after every
seek of a paused video, to a new frame or the same one); drawing after that draws that frame.
"""

# `showAt(video, time, failed)` -> the presented frame's mediaTime (s). `failed` rejects on a media
# error. A seek to the current time presents nothing, so it is refused; a frame that never comes fails
# after 20 s with the time in the message instead of hanging the test.
SHOW_AT = """
(video, time, failed) => {
  if (video.currentTime === time) return Promise.reject(new Error('already at ' + time + ' s: nothing to seek'));
  const presented = new Promise(ok => video.requestVideoFrameCallback((now, frame) => ok(frame.mediaTime)));
  const seeked = new Promise(ok => video.addEventListener('seeked', ok, {once: true}));
  const late = new Promise((_, reject) => setTimeout(
    () => reject(new Error('no frame presented within 20 s of seeking to ' + time + ' s')), 20000));
  video.currentTime = time;
  return Promise.race([Promise.all([seeked, presented]).then(([, mediaTime]) => mediaTime), failed, late]);
}
"""
