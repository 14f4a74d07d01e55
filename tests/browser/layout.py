"""Layout facts read in the page: where things are on a video's picture (the picture's
rectangle inside its element is worked out here independently of the pages' own
static/js/picture.js), and touch targets too small for a thumb."""

from playwright.async_api import Page

# Where the picture is drawn on the screen (object-fit aware), in CSS pixels.
PICTURE = """const video = document.querySelector(selector);
  const box = video.getBoundingClientRect();
  const fits = [box.width / video.videoWidth, box.height / video.videoHeight];
  const cover = getComputedStyle(video).objectFit === "cover";
  const scale = cover ? Math.max(...fits) : Math.min(...fits);
  const width = video.videoWidth * scale, height = video.videoHeight * scale;
  const left = box.left + (box.width - width) / 2, top = box.top + (box.height - height) / 2;"""
# Where the centre of a tag lies on the picture, as fractions of the intrinsic frame.
TAG_ON_PICTURE = f"""([selector, id]) => {{
  {PICTURE}
  const tag = document.querySelector(`#tags .tag[data-product-id="${{id}}"]`);
  const at = tag.getBoundingClientRect();
  return [(at.left + at.width / 2 - left) / width, (at.top + at.height / 2 - top) / height];
}}"""
# Picture fractions of the point (x, y), in the element's own pixels.
POINT_ON_PICTURE = f"""([selector, x, y]) => {{
  {PICTURE}
  return [(box.left + x - left) / width, (box.top + y - top) / height];
}}"""
# The share of the viewport the picture covers, clipped to the screen.
PICTURE_SHARE = f"""(selector) => {{
  {PICTURE}
  return (Math.min(width, innerWidth) * Math.min(height, innerHeight)) / (innerWidth * innerHeight);
}}"""
# Visible controls smaller than 44x44 CSS px (WCAG 2.5.5, and what a thumb can hit).
SMALL_TARGETS = """() => [...document.querySelectorAll("button, a, input, select, summary")]
  .filter((node) => node.checkVisibility() && node.getClientRects().length)
  .map((node) => [node.id || node.className || node.textContent, node.getBoundingClientRect()])
  .filter(([, box]) => box.width < 44 || box.height < 44)
  .map(([name, box]) => `${name} ${Math.round(box.width)}x${Math.round(box.height)}`)"""


async def targets_are_thumb_sized(page: Page, name: str) -> None:
    small = await page.evaluate(SMALL_TARGETS)
    assert not small, f"{name}: {small}"


async def tag_sits_at(page: Page, product_id: str, aimed: tuple[float, float]) -> None:
    """The product's tag on the player's picture lies within 2 % of ``aimed`` (fractions)."""
    x, y = await page.evaluate(TAG_ON_PICTURE, ["#player", product_id])
    assert abs(x - aimed[0]) <= 0.02 and abs(y - aimed[1]) <= 0.02, (x, y, aimed)
