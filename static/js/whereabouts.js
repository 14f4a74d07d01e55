// An approximate location for neighbourhood shows: the browser's position, sent once to the
// server, which keeps only the ~36 km² area it falls in (an H3 cell), never the point.
import { api } from "./common.js";

/** Asks the browser where we are and tells the server; resolves with the account. */
export function shareLocation() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) {
      reject(new Error("This browser cannot share a location."));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      ({ coords }) => api("PUT", "/me/location", { latitude: coords.latitude, longitude: coords.longitude }).then(resolve, reject),
      (error) => reject(new Error(error.code === error.PERMISSION_DENIED ? "Location sharing was refused." : "Your location could not be found.")),
      { enableHighAccuracy: false, maximumAge: 3_600_000, timeout: 15_000 },
    );
  });
}
