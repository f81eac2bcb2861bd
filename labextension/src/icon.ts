import { LabIcon } from '@jupyterlab/ui-components';

/** A small cluster glyph: three stacked nodes, drawn in the theme's icon colour. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="3" width="18" height="5" rx="1"/>
    <rect x="3" y="10" width="18" height="5" rx="1"/>
    <rect x="3" y="17" width="18" height="5" rx="1"/>
  </g>
  <g fill="#ffffff">
    <circle cx="6.5" cy="5.5" r="1"/>
    <circle cx="6.5" cy="12.5" r="1"/>
    <circle cx="6.5" cy="19.5" r="1"/>
  </g>
</svg>`;

export const paiIcon = new LabIcon({ name: 'pai-magic:icon', svgstr: svg });
