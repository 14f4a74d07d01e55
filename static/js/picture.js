// Positions on the video picture: tags and pins are stored as fractions of the intrinsic frame
// (0..1 across its width and height), never of the <video> box, so a tap in the studio's
// portrait preview lands on the same spot of the picture in a landscape player, a cropped
// (object-fit: cover) full-screen phone player or the replay.

/** Where the picture is drawn inside the element, in the element's own pixels. */
export function pictureRect(video) {
  const width = video.clientWidth;
  const height = video.clientHeight;
  const frameWidth = video.videoWidth;
  const frameHeight = video.videoHeight;
  if (!frameWidth || !frameHeight || !width || !height) return { left: 0, top: 0, width, height };
  const fit = getComputedStyle(video).objectFit;
  if (fit === "fill") return { left: 0, top: 0, width, height };
  const fits = [width / frameWidth, height / frameHeight];
  const scale = fit === "cover" ? Math.max(...fits) : Math.min(...fits);
  const drawnWidth = frameWidth * scale;
  const drawnHeight = frameHeight * scale;
  return { left: (width - drawnWidth) / 2, top: (height - drawnHeight) / 2, width: drawnWidth, height: drawnHeight };
}

/**
 * The picture fractions under a pointer event, or null when it fell on the bars around the
 * picture. `mirrored`: the element is flipped horizontally (a selfie preview).
 */
export function pointOnPicture(video, event, mirrored = false) {
  const box = video.getBoundingClientRect();
  const rect = pictureRect(video);
  let x = (event.clientX - box.left - rect.left) / rect.width;
  const y = (event.clientY - box.top - rect.top) / rect.height;
  if (mirrored) x = 1 - x;
  if (x < 0 || x > 1 || y < 0 || y > 1) return null;
  return { x, y };
}

/**
 * Places `node` (absolutely positioned in a layer that covers the video element) at picture
 * fractions `x`, `y`; hides it where the picture is cropped away.
 */
export function placeOnPicture(video, node, x, y) {
  const rect = pictureRect(video);
  const left = rect.left + x * rect.width;
  const top = rect.top + y * rect.height;
  node.style.left = `${left}px`;
  node.style.top = `${top}px`;
  node.hidden = left < 0 || top < 0 || left > video.clientWidth || top > video.clientHeight;
}

/** Calls `place` whenever the picture may have moved: element resized or new frame size. */
export function onPictureChange(video, place) {
  new ResizeObserver(place).observe(video);
  video.addEventListener("resize", place);
  video.addEventListener("loadedmetadata", place);
}
