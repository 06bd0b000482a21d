export const SOURDOUGH = `# Sourdough starter care

Feed the sourdough starter every twelve hours with equal weights of flour and water. A healthy starter doubles within six hours of feeding and smells pleasantly sour.

## Proofing

Let the shaped dough proof overnight in the refrigerator. Cold proofing develops flavour, and a cold loaf is easier to score before baking in a preheated dutch oven.

## Storage

Keep the finished bread cut side down on a wooden board for two days, or slice and freeze it. Never store sourdough bread in the refrigerator, where it goes stale quickly.
`;

export const TIDE_POOLS = `Tide pools form where the retreating sea leaves water trapped between rocks.

Sea anemones, hermit crabs and purple urchins survive there through every low tide, sheltering from the sun and from hungry gulls.

Visit at the lowest spring tide, step only on bare rock, and put every stone back exactly as you found it.
`;
